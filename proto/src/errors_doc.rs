//! `docs/errors.md`, generated from the reasons table and the further languages' files (a
//! test in `tests/contract.rs` fails when the committed file is stale). Apart from both so that
//! neither module needs the other.

use crate::locales::{LOCALES, Locale};
use crate::reasons::ALL;

/// Renders the reasons table and every further language as the Markdown of `docs/errors.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# kiosk.v1 error reasons\n\n\
         Generated from `proto/kiosk/v1/reasons.toml` (a test fails when this file is stale; \
         regenerate with `UPDATE_DOCS=1 cargo test -p kiosk-proto`).\n\n\
         Every error carries `google.rpc.ErrorInfo` (domain `kiosk.v1`, reason below) and \
         `google.rpc.LocalizedMessage` in ja-JP and en-US with the texts below. \
         \"terminal-side\" reasons never cross the wire: they are the card errors a terminal \
         meets locally. When the session's locale asks for a further language, a third \
         LocalizedMessage in it comes first: those texts follow the main table, one table per \
         language (`proto/kiosk/v1/locales/`).\n\n\
         | reason | gRPC code | ja-JP | en-US |\n| --- | --- | --- | --- |\n",
    );
    for reason in ALL {
        let code = match reason.code {
            Some(code) => format!("{code:?}"),
            None => "terminal-side".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            reason.name, code, reason.ja, reason.en
        ));
    }
    for locale in LOCALES {
        out.push_str(&further_language_table(locale));
    }
    out
}

/// The Markdown table of one further language's texts (`kiosk/v1/locales/<tag>.toml`).
fn further_language_table(locale: &Locale) -> String {
    let mut out = format!("\n## {} (`{}`)\n\n", locale.language, locale.tag);
    if !locale.reviewed {
        out.push_str(
            "Not yet reviewed by a native speaker: a draft from the ja-JP and en-US texts. \
             Have it reviewed before residents read it.\n\n",
        );
    }
    out.push_str("| reason | text |\n| --- | --- |\n");
    for reason in ALL {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            reason.name,
            locale.text(reason)
        ));
    }
    out
}
