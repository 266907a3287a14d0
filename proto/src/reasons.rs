//! Every error reason of the contract with its gRPC code and the words a kiosk shows.
//!
//! `kiosk/v1/errors.proto` names the reasons; this table adds the code and the two messages.
//! A test keeps the two in step, and `docs/errors.md` is generated from this table (a test
//! checks it is current), so the list lives in one place.

use tonic::Code;

/// One error reason: its stable name, the gRPC code it travels with, and what a kiosk shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The `ErrorInfo.reason` string, equal to an `ErrorReason` value name.
    pub name: &'static str,
    /// The gRPC status code. `None` for terminal-side reasons that never cross the wire.
    pub code: Option<Code>,
    /// ja-JP text a kiosk may show as is. No personal data.
    pub ja: &'static str,
    /// en-US text a kiosk may show as is. No personal data.
    pub en: &'static str,
}

/// One constant per reason, so code names a reason as `reasons::CARD_REVOKED` and a misspelt
/// one does not compile; and [`ALL`], the table in the order of `errors.proto` (a test keeps
/// the two equal, both ways).
macro_rules! reasons {
    ($($name:ident, $code:expr, $ja:literal, $en:literal;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: ", $en)]
            pub const $name: Reason = Reason { name: stringify!($name), code: $code, ja: $ja, en: $en };
        )*
        /// Every reason, in the order of `errors.proto`.
        pub const ALL: &[Reason] = &[$($name,)*];
    };
}

reasons! {
    INVALID_FIELD, Some(Code::InvalidArgument),
        "入力内容に誤りがあります。最初からやり直してください。",
        "The request is invalid. Please start again.";
    REQUEST_TOO_LARGE, Some(Code::ResourceExhausted),
        "送信されたデータが大きすぎます。最初からやり直してください。",
        "The request is too large. Please start again.";
    TERMINAL_UNKNOWN, Some(Code::Unauthenticated),
        "この端末は登録されていません。店員にお知らせください。",
        "This terminal is not registered. Please tell the store staff.";
    TERMINAL_SUSPENDED, Some(Code::PermissionDenied),
        "この端末は現在ご利用いただけません。店員にお知らせください。",
        "This terminal is suspended. Please tell the store staff.";
    TERMINAL_RETIRED, Some(Code::PermissionDenied),
        "この端末は利用を終了しています。",
        "This terminal has been retired.";
    WRONG_CLIENT_ROLE, Some(Code::PermissionDenied),
        "この機器からはこの操作はできません。",
        "This device may not perform this operation.";
    SESSION_NOT_FOUND, Some(Code::NotFound),
        "操作が中断されました。最初からやり直してください。",
        "The session was not found. Please start again.";
    SESSION_EXPIRED, Some(Code::FailedPrecondition),
        "時間切れになりました。最初からやり直してください。",
        "The session timed out. Please start again.";
    SESSION_STATE, Some(Code::FailedPrecondition),
        "操作の順序が正しくありません。最初からやり直してください。",
        "Steps were taken out of order. Please start again.";
    CHALLENGE_EXPIRED, Some(Code::Unauthenticated),
        "時間切れになりました。もう一度カードを置いてください。",
        "The time ran out. Please place your card again.";
    CHALLENGE_USED, Some(Code::Unauthenticated),
        "認証に失敗しました。最初からやり直してください。",
        "Authentication failed. Please start again.";
    CARD_CERTIFICATE_MALFORMED, Some(Code::InvalidArgument),
        "カードの情報を読み取れませんでした。もう一度お試しください。",
        "The card's certificate could not be read. Please try again.";
    CARD_CERTIFICATE_UNTRUSTED, Some(Code::Unauthenticated),
        "このカードはご利用いただけません。",
        "This card cannot be used.";
    CARD_EXPIRED, Some(Code::Unauthenticated),
        "カードの電子証明書の有効期限が切れています。市区町村の窓口で更新してください。",
        "The card's electronic certificate has expired. Please renew it at your municipal office.";
    CARD_NOT_YET_VALID, Some(Code::Unauthenticated),
        "カードの電子証明書はまだ有効になっていません。",
        "The card's electronic certificate is not valid yet.";
    CARD_KEY_USAGE, Some(Code::Unauthenticated),
        "このカードの証明書は本人確認に使用できません。",
        "This card's certificate cannot be used for identification.";
    CARD_REVOKED, Some(Code::PermissionDenied),
        "カードの電子証明書が失効しています。市区町村の窓口にお問い合わせください。",
        "The card's electronic certificate has been revoked. Please contact your municipal office.";
    CARD_UNKNOWN, Some(Code::PermissionDenied),
        "このカードでは証明書を交付できません。市区町村の窓口にお問い合わせください。",
        "Certificates cannot be issued for this card. Please contact your municipal office.";
    SIGNATURE_INVALID, Some(Code::Unauthenticated),
        "本人確認ができませんでした。もう一度お試しください。",
        "Identity could not be confirmed. Please try again.";
    REVOCATION_UNAVAILABLE, Some(Code::Unavailable),
        "ただいま本人確認ができません。しばらくしてからお試しください。",
        "Identity cannot be checked right now. Please try again later.";
    MUNICIPALITY_NOT_SERVED, Some(Code::PermissionDenied),
        "お住まいの市区町村はコンビニ交付に対応していません。",
        "Your municipality does not offer convenience-store issuance.";
    PIN_WRONG, None,
        "暗証番号が違います。",
        "The PIN is incorrect.";
    PIN_BLOCKED, None,
        "暗証番号がロックされています。市区町村の窓口で解除してください。",
        "The PIN is locked. Please have it reset at your municipal office.";
    CARD_REMOVED, None,
        "カードが取り外されました。最初からやり直してください。",
        "The card was removed. Please start again.";
    NOT_JPKI_CARD, None,
        "マイナンバーカードを置いてください。",
        "Please place a My Number Card.";
    JUKI_CARD_UNSUPPORTED, None,
        "住民基本台帳カードはご利用いただけません。マイナンバーカードをご利用ください。",
        "Basic Resident Register cards are not supported. Please use a My Number Card.";
    CARD_READ_FAILED, None,
        "カードを読み取れませんでした。カードを置き直してください。",
        "The card could not be read. Please place it again.";
    SUPPORT_MEASURE, Some(Code::FailedPrecondition),
        "この証明書はコンビニでは交付できません。市区町村の窓口にお問い合わせください。",
        "This certificate cannot be issued at a store. Please contact your municipal office.";
    MOVED_OUT, Some(Code::FailedPrecondition),
        "転出済みのため交付できません。",
        "Cannot be issued because the person has moved out.";
    MOVE_OUT_FILED, Some(Code::FailedPrecondition),
        "転出の届出中のため交付できません。市区町村の窓口にお問い合わせください。",
        "Cannot be issued while a move-out is being processed. Please contact your municipal office.";
    DECEASED, Some(Code::FailedPrecondition),
        "この証明書は交付できません。市区町村の窓口にお問い合わせください。",
        "This certificate cannot be issued. Please contact your municipal office.";
    NO_SEAL_REGISTRATION, Some(Code::FailedPrecondition),
        "印鑑登録がないため交付できません。",
        "Cannot be issued because there is no seal registration.";
    UNDER_MINIMUM_AGE, Some(Code::FailedPrecondition),
        "年齢の条件によりコンビニでは交付できません。",
        "Cannot be issued at a store because of the age requirement.";
    PENDING_CHANGE, Some(Code::FailedPrecondition),
        "記載内容の変更手続き中のため交付できません。後日お試しください。",
        "A change to the record is being processed. Please try again later.";
    NO_TAX_DATA, Some(Code::FailedPrecondition),
        "指定された年度の課税情報がないため交付できません。",
        "There is no tax record for the selected year.";
    NOT_PERMITTED_SUBJECT, Some(Code::FailedPrecondition),
        "選択された方の証明書は交付できません。",
        "A certificate for the selected person cannot be issued.";
    OUT_OF_SERVICE_HOURS, Some(Code::Unavailable),
        "ただいまの時間はご利用いただけません。",
        "This service is not available at this time.";
    SERVICE_SUSPENDED, Some(Code::Unavailable),
        "ただいまサービスを停止しています。",
        "The service is suspended at the moment.";
    CERTIFICATE_TYPE_NOT_OFFERED, Some(Code::FailedPrecondition),
        "お住まいの市区町村ではこの証明書をコンビニで交付していません。",
        "Your municipality does not issue this certificate at stores.";
    RESIDENT_NOT_FOUND, Some(Code::NotFound),
        "該当する住民の情報がありません。",
        "No such resident.";
    FEE_MISMATCH, Some(Code::FailedPrecondition),
        "手数料が変更されました。最初からやり直してください。",
        "The fee has changed. Please start again.";
    TOO_MANY_COPIES, Some(Code::InvalidArgument),
        "一度に交付できる枚数を超えています。",
        "Too many copies in one order.";
    IDEMPOTENCY_KEY_REUSED, Some(Code::AlreadyExists),
        "操作が重複しています。最初からやり直してください。",
        "This request was already used for another order. Please start again.";
    SUBJECT_MISMATCH, Some(Code::Internal),
        "証明書を交付できませんでした。料金はかかりません。店員にお知らせください。",
        "The certificate could not be issued. You have not been charged. Please tell the store staff.";
    ISSUER_UNAVAILABLE, Some(Code::Unavailable),
        "市区町村のシステムに接続できません。しばらくしてからお試しください。",
        "The municipality's system cannot be reached. Please try again later.";
    ISSUANCE_NOT_FOUND, Some(Code::NotFound),
        "該当する交付がありません。",
        "No such issuance.";
    ISSUANCE_ALREADY_REPORTED, Some(Code::FailedPrecondition),
        "印刷結果は既に報告されています。",
        "The print outcome was already reported.";
    PRINT_DEADLINE_PASSED, Some(Code::FailedPrecondition),
        "印刷の期限を過ぎています。店員にお知らせください。",
        "The print deadline has passed. Please tell the store staff.";
    OVERLOADED, Some(Code::ResourceExhausted),
        "ただいま混み合っています。しばらくしてからお試しください。",
        "The service is busy. Please try again shortly.";
    TIMED_OUT, Some(Code::DeadlineExceeded),
        "時間内に処理できませんでした。料金はかかりません。最初からやり直してください。",
        "The request took too long. You have not been charged. Please start again.";
    INTERNAL_ERROR, Some(Code::Internal),
        "エラーが発生しました。料金はかかりません。店員にお知らせください。",
        "An error occurred. You have not been charged. Please tell the store staff.";
    ISSUANCE_FINISHED, Some(Code::FailedPrecondition),
        "この交付は既に終了しています。証明書が必要な場合は最初からやり直してください。",
        "This issuance has already ended. To obtain the certificate, please start again.";
    PROOF_RANGE_INVALID, Some(Code::InvalidArgument),
        "指定された範囲が正しくありません。",
        "The requested range is invalid.";
    ANOMALY_NOT_FOUND, Some(Code::NotFound),
        "該当する異常記録がありません。",
        "No such anomaly.";
    ANOMALY_ALREADY_RESOLVED, Some(Code::FailedPrecondition),
        "この異常記録は既に解決済みです。",
        "This anomaly is already resolved.";
    DOCUMENT_UNREADABLE, Some(Code::InvalidArgument),
        "証明書の情報を読み取れませんでした。",
        "The document could not be read.";
}

/// The reason named `name`, if the contract has one.
pub fn find(name: &str) -> Option<&'static Reason> {
    ALL.iter().find(|reason| reason.name == name)
}

/// Renders the table as the Markdown of `docs/errors.md`.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "# kiosk.v1 error reasons\n\n\
         Generated from `proto/src/reasons.rs` (a test fails when this file is stale; \
         regenerate with `UPDATE_DOCS=1 cargo test -p kiosk-proto`).\n\n\
         Every error carries `google.rpc.ErrorInfo` (domain `kiosk.v1`, reason below) and \
         `google.rpc.LocalizedMessage` in ja-JP and en-US with the texts below. \
         \"terminal-side\" reasons never cross the wire: they are the card errors a terminal \
         meets locally.\n\n\
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
    out
}

/// A field of the request that was invalid, and why (for `google.rpc.BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `items[0].copies`.
    pub field: String,
    /// Why it is invalid, in English, for the vendor's developer (not shown to residents).
    pub description: String,
}

/// Most field violations one status carries. Validators stop at their first violations, and
/// this cap holds whatever a caller passes: 100,000 empty items once drew 200,001 violations,
/// a 9.5 MB trailer that a default gRPC client cannot read (issue 10).
pub const MAX_VIOLATIONS: usize = 8;

/// Longest field path or description carried in a violation, in bytes.
pub const MAX_VIOLATION_TEXT: usize = 200;

/// Longest status message carried, in bytes.
pub const MAX_DETAIL: usize = 500;

/// `text` cut to at most `max` bytes at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Builds the `tonic::Status` of a reason in the contract's shape: the reason's code,
/// `ErrorInfo` (domain `kiosk.v1`), `LocalizedMessage` in ja-JP and en-US, and `BadRequest`
/// when fields are named. `detail` becomes the status message: write it for the vendor's
/// developer and keep personal data out of it.
///
/// The answer stays small whatever the request was: at most [`MAX_VIOLATIONS`] violations,
/// each text clipped to [`MAX_VIOLATION_TEXT`] bytes and the message to [`MAX_DETAIL`], so the
/// details stay under 4 KiB.
///
/// A reason without a code (terminal-side) is sent as `INTERNAL`: the server never sends one.
pub fn status(reason: &Reason, detail: &str, violations: &[FieldViolation]) -> tonic::Status {
    status_with_metadata(reason, detail, violations, &[])
}

/// [`status`] with `ErrorInfo.metadata` entries: facts a terminal acts on (e.g. an
/// issuance's recorded state), never personal data.
pub fn status_with_metadata(
    reason: &Reason,
    detail: &str,
    violations: &[FieldViolation],
    metadata: &[(&str, String)],
) -> tonic::Status {
    use tonic_types::{ErrorDetail, ErrorInfo, LocalizedMessage, StatusExt};
    let metadata: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    let mut details = vec![
        ErrorDetail::from(ErrorInfo::new(reason.name, crate::ERROR_DOMAIN, metadata)),
        ErrorDetail::from(LocalizedMessage::new("ja-JP", reason.ja)),
        ErrorDetail::from(LocalizedMessage::new("en-US", reason.en)),
    ];
    if !violations.is_empty() {
        let violations: Vec<tonic_types::FieldViolation> = violations
            .iter()
            .take(MAX_VIOLATIONS)
            .map(|v| {
                tonic_types::FieldViolation::new(
                    clip(&v.field, MAX_VIOLATION_TEXT),
                    clip(&v.description, MAX_VIOLATION_TEXT),
                )
            })
            .collect();
        details.push(ErrorDetail::from(tonic_types::BadRequest::new(violations)));
    }
    let code = reason.code.unwrap_or(Code::Internal);
    tonic::Status::with_error_details_vec(code, clip(detail, MAX_DETAIL), details)
}

/// The reason named in a status's `ErrorInfo`, if it carries one from this contract.
pub fn reason_of(status: &tonic::Status) -> Option<&'static Reason> {
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info()?.clone();
    if info.domain != crate::ERROR_DOMAIN {
        return None;
    }
    find(&info.reason)
}
