//! The order of an error's `google.rpc.LocalizedMessage` entries: the language of the
//! session's `OpenSessionRequest.locale` first (errors.proto). Every entry stays: a kiosk in
//! any language always finds ja-JP and en-US.

use tonic::Status;
use tonic_types::{ErrorDetail, StatusExt};

/// `status` with the LocalizedMessage in `locale`'s language (its primary subtag: "en-GB"
/// picks en-US) before the others. An empty or Japanese locale, or one no entry speaks,
/// leaves the order as built: ja-JP first.
pub fn in_locale(status: Status, locale: &str) -> Status {
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
        assert_eq!(locales(&in_locale(status(), "pt-BR")), ["ja-JP", "en-US"]);
        let english = in_locale(status(), "en-US");
        assert_eq!(reasons::reason_of(&english).unwrap().name, "PIN_WRONG");
        assert_eq!(english.code(), status().code());
        assert_eq!(english.message(), "x");
    }
}
