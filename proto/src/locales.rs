//! The kiosk texts in the further languages residents read at a kiosk: zh-Hans, ko, vi, pt-BR,
//! es, ne, fil, id and やさしい日本語 (ja-x-easy), besides the ja-JP and en-US of every reason.
//!
//! Each language is a data file, `kiosk/v1/locales/<tag>.toml`, beside the reasons table:
//! `locale`, `language` (its own name for itself), `reviewed` (false until a native speaker has
//! checked every line) and `[reasons]`, one text per reason. build.rs refuses a file that
//! misses a reason, names one the table lacks or whose tag is not its file name, so a new
//! reason cannot ship without its texts.
//!
//! An error carries ja-JP and en-US always (errors.proto promises both) and, when the
//! session's locale is one of these languages, that language's text first: never every
//! language at once.

use crate::certificate_types::{self, TypeName};
use crate::reasons::Reason;
use crate::v1::CertificateType;

/// The texts of one further language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    /// Its BCP 47 tag, the `locale` of the messages carrying its texts (e.g. `zh-Hans`).
    pub tag: &'static str,
    /// The language's name for itself, for a kiosk's language picker.
    pub language: &'static str,
    /// Whether a native speaker has reviewed every text. Drafts are `false`.
    pub reviewed: bool,
    /// `(reason name, text)` for every reason, in the order of the reasons table.
    texts: &'static [(&'static str, &'static str)],
    /// `(certificate type name, menu name)` for every type of `certificate_types.toml`.
    type_names: &'static [(&'static str, &'static str)],
}

impl Locale {
    /// The kiosk text of `reason` in this language. Every reason has one (build.rs checks);
    /// should a reason still lack it, the en-US text stands in.
    pub fn text(&self, reason: &Reason) -> &'static str {
        self.texts
            .iter()
            .find(|(name, _)| *name == reason.name)
            .map_or(reason.en, |(_, text)| text)
    }

    /// The menu name of a certificate type in this language; the en-US name should one lack
    /// it (build.rs refuses a file that does).
    pub fn type_name(&self, ty: &TypeName) -> &'static str {
        self.type_names
            .iter()
            .find(|(name, _)| *name == ty.name)
            .map_or(ty.en, |(_, text)| text)
    }
}

include!(concat!(env!("OUT_DIR"), "/locales_table.rs"));

/// The further language a session's `locale` asks for, if one of [`LOCALES`] speaks it.
///
/// Matching is on the language, the way a kiosk's setting is written: `vi-VN` and `vi` are
/// Vietnamese, `ko-KR` Korean, `es-MX` Spanish, `pt`, `pt-BR` and `pt-PT` Portuguese (the
/// texts are Brazilian), `tl` as well as `fil` Filipino, `in` as well as `id` Indonesian.
/// Chinese is Simplified only when the tag says so or names a region that writes it
/// (`zh`, `zh-Hans`, `zh-CN`, `zh-SG`): `zh-Hant`, `zh-TW` and `zh-HK` get no Chinese text
/// rather than the wrong script. `ja-x-easy` is asked for by its full tag; ja-JP and en-US
/// are not further languages, so they give `None`, as does anything unknown.
pub fn negotiate(locale: &str) -> Option<&'static Locale> {
    let lower = locale.trim().to_ascii_lowercase();
    let mut subtags = lower.split(['-', '_']);
    let language = subtags.next().unwrap_or_default();
    let rest: Vec<&str> = subtags.collect();
    let tag = match language {
        "ja" if rest == ["x", "easy"] => "ja-x-easy",
        "zh" => match rest.first().copied() {
            None | Some("hans" | "cn" | "sg") => "zh-Hans",
            Some(_) => return None,
        },
        "pt" => "pt-BR",
        "tl" | "fil" => "fil",
        "in" | "id" => "id",
        "ko" | "vi" | "es" | "ne" => language,
        _ => return None,
    };
    LOCALES.iter().find(|l| l.tag == tag)
}

/// The `LocalizedText` of `reason` for a session in `locale`: ja-JP and en-US always, and
/// when the locale asks for a further language, its tag and text in `locale` and `text`.
pub fn localized_text(reason: &Reason, locale: &str) -> crate::v1::LocalizedText {
    let further = negotiate(locale);
    crate::v1::LocalizedText {
        ja: reason.ja.to_owned(),
        en: reason.en.to_owned(),
        locale: further.map(|l| l.tag.to_owned()).unwrap_or_default(),
        text: further
            .map(|l| l.text(reason).to_owned())
            .unwrap_or_default(),
    }
}

/// The menu name of `ty` for a session in `locale`: ja-JP and en-US always, and the
/// further language's when the locale asks for one. `None` for an unspecified type.
pub fn localized_type_name(ty: CertificateType, locale: &str) -> Option<crate::v1::LocalizedText> {
    let names = certificate_types::name_of(ty)?;
    let further = negotiate(locale);
    Some(crate::v1::LocalizedText {
        ja: names.ja.to_owned(),
        en: names.en.to_owned(),
        locale: further.map(|l| l.tag.to_owned()).unwrap_or_default(),
        text: further
            .map(|l| l.type_name(names).to_owned())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasons;

    #[test]
    fn every_language_of_the_issue_is_there_and_marked_for_review() {
        let tags: Vec<&str> = LOCALES.iter().map(|l| l.tag).collect();
        assert_eq!(
            tags,
            [
                "es",
                "fil",
                "id",
                "ja-x-easy",
                "ko",
                "ne",
                "pt-BR",
                "vi",
                "zh-Hans"
            ]
        );
        for locale in LOCALES {
            assert!(
                !locale.reviewed,
                "{} claims a review nobody did",
                locale.tag
            );
            assert!(!locale.language.is_empty());
        }
    }

    #[test]
    fn every_reason_has_its_own_text_in_every_language() {
        for locale in LOCALES {
            for reason in reasons::ALL {
                let text = locale.text(reason);
                assert!(!text.trim().is_empty(), "{} {}", locale.tag, reason.name);
                if locale.tag != "ja-x-easy" {
                    assert_ne!(text, reason.ja, "{} {} is ja-JP", locale.tag, reason.name);
                }
            }
        }
    }

    #[test]
    fn every_certificate_type_has_its_name_in_every_language() {
        for locale in LOCALES {
            for ty in certificate_types::ALL {
                let name = locale.type_name(ty);
                assert!(!name.trim().is_empty(), "{} {}", locale.tag, ty.name);
                assert_ne!(name, ty.en, "{} {} is en-US", locale.tag, ty.name);
            }
        }
        let korean = localized_type_name(CertificateType::SealRegistration, "ko-KR").unwrap();
        assert_eq!(
            (korean.ja.as_str(), korean.locale.as_str()),
            ("印鑑登録証明書", "ko")
        );
        assert_eq!(
            korean.text,
            negotiate("ko")
                .unwrap()
                .type_name(&certificate_types::ALL[2])
        );
        let english = localized_type_name(CertificateType::KosekiFull, "en-US").unwrap();
        assert_eq!((english.locale.as_str(), english.text.as_str()), ("", ""));
        assert_eq!(
            localized_type_name(CertificateType::Unspecified, "ko"),
            None
        );
    }

    #[test]
    fn a_session_locale_finds_its_language() {
        let tag = |locale: &str| negotiate(locale).map(|l| l.tag);
        for (asked, found) in [
            ("vi-VN", Some("vi")),
            ("vi", Some("vi")),
            ("ko-KR", Some("ko")),
            ("zh-CN", Some("zh-Hans")),
            ("zh-Hans-CN", Some("zh-Hans")),
            ("zh", Some("zh-Hans")),
            ("zh-TW", None),
            ("zh-Hant", None),
            ("pt-BR", Some("pt-BR")),
            ("pt", Some("pt-BR")),
            ("es-MX", Some("es")),
            ("ne-NP", Some("ne")),
            ("tl-PH", Some("fil")),
            ("fil", Some("fil")),
            ("in", Some("id")),
            ("id-ID", Some("id")),
            ("ja-x-easy", Some("ja-x-easy")),
            ("JA-X-EASY", Some("ja-x-easy")),
            ("ja-JP", None),
            ("ja", None),
            ("en-US", None),
            ("fr-FR", None),
            ("", None),
        ] {
            assert_eq!(tag(asked), found, "{asked}");
        }
    }

    #[test]
    fn a_localized_text_keeps_both_contract_languages() {
        let reason = &reasons::OUT_OF_SERVICE_HOURS;
        let vietnamese = localized_text(reason, "vi-VN");
        assert_eq!(
            (vietnamese.ja.as_str(), vietnamese.en.as_str()),
            (reason.ja, reason.en)
        );
        assert_eq!(vietnamese.locale, "vi");
        assert_eq!(vietnamese.text, negotiate("vi").unwrap().text(reason));
        let english = localized_text(reason, "en-US");
        assert_eq!((english.locale.as_str(), english.text.as_str()), ("", ""));
        assert_eq!(english.en, reason.en);
    }
}
