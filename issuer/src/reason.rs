//! Why a resident cannot obtain a certificate: the refusals of the eligibility rules, each
//! with its stable `kiosk.v1.ErrorReason`.
//!
//! A module of its own, apart from the rules that decide them and the error that carries
//! them, because the register, the rules and the issuer's error all name these reasons:
//! kept in `rules`, the error type and the register would depend on the rules, which depend
//! on the register (a module cycle, issue 11).

/// Why a resident cannot obtain a certificate. Each maps to one `kiosk.v1.ErrorReason` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 支援措置 on the requester or on someone the certificate is about.
    SupportMeasure,
    /// Moved out (転出), or a household member has (住民票).
    MovedOut,
    /// Filed a 転出届, or a household member has (住民票).
    MoveOutFiled,
    /// The person died.
    Deceased,
    /// No live seal registration.
    NoSealRegistration,
    /// Under the municipality's minimum age.
    UnderMinimumAge,
    /// A change is filed and not reflected yet.
    PendingChange,
    /// No tax record for the fiscal year, or a year not offered.
    NoTaxData,
    /// The requester may not obtain a certificate about this person.
    NotPermittedSubject,
    /// The type is outside its service hours now.
    OutOfServiceHours,
    /// The kill switch is on, or a maintenance window is running.
    ServiceSuspended,
    /// The municipality does not offer this type at stores.
    CertificateTypeNotOffered,
    /// No such resident.
    ResidentNotFound,
}

impl Reason {
    /// The contract's reason (`kiosk.v1.ErrorReason`).
    pub fn contract(self) -> kiosk_proto::reasons::Reason {
        use kiosk_proto::reasons;
        match self {
            Reason::SupportMeasure => reasons::SUPPORT_MEASURE,
            Reason::MovedOut => reasons::MOVED_OUT,
            Reason::MoveOutFiled => reasons::MOVE_OUT_FILED,
            Reason::Deceased => reasons::DECEASED,
            Reason::NoSealRegistration => reasons::NO_SEAL_REGISTRATION,
            Reason::UnderMinimumAge => reasons::UNDER_MINIMUM_AGE,
            Reason::PendingChange => reasons::PENDING_CHANGE,
            Reason::NoTaxData => reasons::NO_TAX_DATA,
            Reason::NotPermittedSubject => reasons::NOT_PERMITTED_SUBJECT,
            Reason::OutOfServiceHours => reasons::OUT_OF_SERVICE_HOURS,
            Reason::ServiceSuspended => reasons::SERVICE_SUSPENDED,
            Reason::CertificateTypeNotOffered => reasons::CERTIFICATE_TYPE_NOT_OFFERED,
            Reason::ResidentNotFound => reasons::RESIDENT_NOT_FOUND,
        }
    }

    /// The contract reason's name (`ErrorInfo.reason`).
    pub fn name(self) -> &'static str {
        self.contract().name
    }
}
