//! The languages of an error's `google.rpc.LocalizedMessage` entries and of the menu's and
//! service status's `LocalizedText`: the language of the session's `OpenSessionRequest.locale`
//! first (errors.proto). ja-JP and en-US always stay, so a kiosk in any language finds them;
//! a further language (`kiosk_proto::locales`) adds its own entry, never all of them.

use kiosk_proto::locales::{localized_text, localized_type_name, negotiate};
use kiosk_proto::reasons;
use kiosk_proto::v1 as pb;
use tonic::Status;
use tonic_types::{ErrorDetail, LocalizedMessage, StatusExt};

/// `status` in the session's `locale`: a further language's text first when the locale asks
/// for one; otherwise the LocalizedMessage in the locale's language (its primary subtag:
/// "en-GB" picks en-US) before the others. An empty or Japanese locale, or one no entry
/// speaks, leaves the order as built: ja-JP first.
pub fn in_locale(status: Status, locale: &str) -> Status {
    match negotiate(locale) {
        Some(further) => with_further_language(status, further),
        None => contract_language_first(status, locale),
    }
}

/// `status` with `further`'s text of its reason as the first LocalizedMessage. A status
/// without a kiosk.v1 reason (none is sent) is left as it is.
fn with_further_language(status: Status, further: &kiosk_proto::locales::Locale) -> Status {
    let Some(reason) = reasons::reason_of(&status) else {
        return status;
    };
    let mut details = status.get_error_details_vec();
    let Some(first) = details
        .iter()
        .position(|d| matches!(d, ErrorDetail::LocalizedMessage(_)))
    else {
        return status;
    };
    let message = LocalizedMessage::new(further.tag, further.text(reason));
    details.insert(first, ErrorDetail::from(message));
    Status::with_error_details_vec(status.code(), status.message(), details)
}

/// `status` with its ja-JP or en-US LocalizedMessage, whichever `locale` speaks, first.
fn contract_language_first(status: Status, locale: &str) -> Status {
    let language = locale.split('-').next().unwrap_or_default();
    if language.is_empty() || language.eq_ignore_ascii_case("ja") {
        return status;
    }
    let speaks = |detail: &ErrorDetail| {
        matches!(detail, ErrorDetail::LocalizedMessage(m)
            if m.locale.split('-').next().is_some_and(|l| l.eq_ignore_ascii_case(language)))
    };
    let mut details = status.get_error_details_vec();
    let (Some(first), Some(at)) = (
        details
            .iter()
            .position(|d| matches!(d, ErrorDetail::LocalizedMessage(_))),
        details.iter().position(speaks),
    ) else {
        return status;
    };
    if at <= first {
        return status;
    }
    let wanted = details.remove(at);
    details.insert(first, wanted);
    Status::with_error_details_vec(status.code(), status.message(), details)
}

/// `menu` in the session's `locale`: every entry's `type_name` (ja-JP and en-US, and the
/// further language when the locale asks for one), and every unavailable entry's message in
/// that language as well. Entries carry a reason name from the contract; one the table lacks
/// keeps the message it came with.
pub fn menu_in_locale(mut menu: pb::Menu, locale: &str) -> pb::Menu {
    let further = negotiate(locale).is_some();
    for entry in &mut menu.entries {
        entry.type_name = localized_type_name(entry.r#type(), locale);
        if !further {
            continue;
        }
        if let Some(reason) = reasons::find(&entry.unavailable_reason) {
            entry.unavailable_message = Some(localized_text(reason, locale));
        }
    }
    menu
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_proto::reasons;

    fn locales(status: &Status) -> Vec<String> {
        status
            .get_error_details_vec()
            .into_iter()
            .filter_map(|d| match d {
                ErrorDetail::LocalizedMessage(m) => Some(m.locale),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_session_language_comes_first_and_both_stay() {
        let status = || reasons::status(&reasons::PIN_WRONG, "x", &[]);
        assert_eq!(locales(&in_locale(status(), "")), ["ja-JP", "en-US"]);
        assert_eq!(locales(&in_locale(status(), "ja-JP")), ["ja-JP", "en-US"]);
        assert_eq!(locales(&in_locale(status(), "en-US")), ["en-US", "ja-JP"]);
        assert_eq!(locales(&in_locale(status(), "en-GB")), ["en-US", "ja-JP"]);
        assert_eq!(locales(&in_locale(status(), "fr-FR")), ["ja-JP", "en-US"]);
        let english = in_locale(status(), "en-US");
        assert_eq!(reasons::reason_of(&english).unwrap().name, "PIN_WRONG");
        assert_eq!(english.code(), status().code());
        assert_eq!(english.message(), "x");
    }

    #[test]
    fn a_further_language_comes_first_and_the_contract_languages_stay() {
        let status = || reasons::status(&reasons::PIN_WRONG, "x", &[]);
        assert_eq!(
            locales(&in_locale(status(), "vi-VN")),
            ["vi", "ja-JP", "en-US"]
        );
        assert_eq!(
            locales(&in_locale(status(), "ja-x-easy")),
            ["ja-x-easy", "ja-JP", "en-US"]
        );
        assert_eq!(locales(&in_locale(status(), "zh-TW")), ["ja-JP", "en-US"]);
        let korean = in_locale(status(), "ko");
        let first = korean
            .get_error_details_vec()
            .into_iter()
            .find_map(|d| match d {
                ErrorDetail::LocalizedMessage(m) => Some(m.message),
                _ => None,
            });
        let expected = negotiate("ko").unwrap().text(&reasons::PIN_WRONG);
        assert_eq!(first.as_deref(), Some(expected));
        assert_eq!(reasons::reason_of(&korean).unwrap().name, "PIN_WRONG");
    }

    #[test]
    fn an_unavailable_menu_entry_speaks_the_session_language() {
        let entry = |reason: &str| pb::MenuEntry {
            r#type: pb::CertificateType::SealRegistration as i32,
            available: reason.is_empty(),
            unavailable_reason: reason.to_owned(),
            ..Default::default()
        };
        let menu = pb::Menu {
            entries: vec![entry("OUT_OF_SERVICE_HOURS"), entry("")],
            ..Default::default()
        };
        let spanish = menu_in_locale(menu.clone(), "es-MX");
        let message = spanish.entries[0].unavailable_message.clone().unwrap();
        assert_eq!(message.locale, "es");
        assert_eq!(message.ja, reasons::OUT_OF_SERVICE_HOURS.ja);
        assert!(!message.text.is_empty());
        assert_eq!(spanish.entries[1].unavailable_message, None);
        let name = spanish.entries[1].type_name.clone().unwrap();
        assert_eq!(
            (name.ja.as_str(), name.locale.as_str()),
            ("印鑑登録証明書", "es")
        );
        assert!(!name.text.is_empty());
        let english = menu_in_locale(menu.clone(), "en-US");
        assert_eq!(english.entries[0].unavailable_message, None);
        let name = english.entries[0].type_name.clone().unwrap();
        assert_eq!((name.en.is_empty(), name.locale.as_str()), (false, ""));
    }
}
