//! The in-process issuer handle: menu, render (all or nothing) and void.
//!
//! Every decision reads the current register inside one transaction
//! ([`Register::begin`]); rendering and the issued-document registry entry happen in that same
//! transaction, so what is printed is exactly what was decided on, and an order either leaves
//! a registry entry for every document or for none.

use std::sync::Arc;

use kiosk_document::model::{
    Block, Certificate, Header, IssuedAt, Municipality as DocMunicipality,
};
use kiosk_document::{CertificateType, IssuanceId, MunicipalityCode, ResidentRef, Serial};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::calendar::{in_jst, unix_ms};
use crate::content::{self, RecordPerson};
use crate::error::IssuerError;
use crate::model::{
    MAX_ITEMS, Member, MemberRelation, Menu, MenuEntry, RenderedDocument, RequestItem,
};
use crate::register::{
    Koseki, KosekiMember, Municipality, PendingChange, Register, Resident, ResidentStatus,
    ServiceWindow, SupportMeasure, read,
};
use crate::rules::{self, Reason};

mod registry;

pub use registry::{Confirmed, DocumentStatus, PendingIssuance};

/// What rendering one certificate produced.
#[derive(Clone)]
pub struct RenderOutput {
    /// The signed PDF.
    pub pdf: Vec<u8>,
    /// Per page, the subjects marked on it.
    pub pages: Vec<Vec<ResidentRef>>,
}

/// Turns a certificate into a signed PDF. The document module's renderer implements it; the
/// issuer holds one behind an `Arc` so renders can run on any task.
pub trait CertificateRenderer: Send + Sync {
    /// Renders and signs `certificate`.
    fn render(&self, certificate: &Certificate) -> Result<RenderOutput, IssuerError>;
}

impl CertificateRenderer for crate::document::render::Renderer {
    fn render(&self, certificate: &Certificate) -> Result<RenderOutput, IssuerError> {
        let doc = crate::document::render::Renderer::render(self, certificate)
            .map_err(|e| IssuerError::Render(e.to_string()))?;
        Ok(RenderOutput {
            pdf: doc.pdf,
            pages: doc.pages,
        })
    }
}

/// One municipality's issuer over its register.
#[derive(Clone)]
pub struct Issuer {
    register: Register,
    municipality: MunicipalityCode,
    renderer: Arc<dyn CertificateRenderer>,
    random: SystemRandom,
}

/// One priced line of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteLine {
    /// The type.
    pub ty: CertificateType,
    /// Copies.
    pub copies: u32,
    /// Fee per copy, yen.
    pub fee_yen: u32,
}

/// What the rules allowed for one item, with the register data its certificate prints.
struct Decided {
    item: RequestItem,
    fee_yen: u32,
    blocks: Vec<Block>,
}

/// The register data every item of one order is judged against.
struct Context {
    municipality: Municipality,
    requester: Resident,
    household: Vec<Resident>,
    /// The requester's current 戸籍 and its members, without their 身分事項 and 附票.
    koseki: Option<(Koseki, Vec<KosekiMember>)>,
    /// The same members with their 身分事項 and 附票, read (in the same transaction) the first
    /// time a koseki certificate is decided.
    koseki_in_full: tokio::sync::OnceCell<Vec<KosekiMember>>,
    windows: Vec<ServiceWindow>,
    suspended: bool,
    in_maintenance: bool,
    closed: Option<crate::register::ClosedDate>,
    now: OffsetDateTime,
    /// Fees in force today, read once per decision (same transaction, same snapshot).
    fees: Vec<(CertificateType, u32)>,
    /// Active support measures on the requester, the household and the 戸籍's members, read
    /// once per decision; a person absent here has none.
    support_measures: Vec<(ResidentRef, SupportMeasure)>,
    /// Changes not reflected yet on the people of `pending_people` and the 戸籍
    /// `pending_koseki`, read once per decision: a menu judges seven types over them.
    pending: Vec<(Option<String>, Option<String>, PendingChange)>,
    /// Whose pending changes `pending` holds.
    pending_people: Vec<ResidentRef>,
    /// Which 戸籍's pending changes `pending` holds.
    pending_koseki: Option<String>,
}

impl Context {
    async fn load(
        conn: &mut AnyConnection,
        municipality: &MunicipalityCode,
        requester: &ResidentRef,
        now: OffsetDateTime,
    ) -> Result<Context, IssuerError> {
        let code = municipality.as_str();
        let municipality = read::municipality(conn, code)
            .await?
            .ok_or(IssuerError::MunicipalityNotServed)?;
        let (requester, household) = read::resident_with_household(conn, requester)
            .await?
            .filter(|(r, _)| r.municipality_code == code)
            .ok_or(IssuerError::Refused(Reason::ResidentNotFound))?;
        let koseki = match &requester.koseki_id {
            Some(id) => match read::koseki(conn, id).await? {
                Some(k) if k.current => {
                    // Without 身分事項 and 附票: only koseki certificates print them, and
                    // they are read when one is decided (`Context::koseki_members_in_full`).
                    let members = read::koseki_members_without_details(conn, id).await?;
                    Some((k, members))
                }
                _ => None,
            },
            None => None,
        };
        let windows = read::service_windows(conn, code).await?;
        let (switch, in_maintenance, closed) =
            read::service_state(conn, code, unix_ms(now), in_jst(now).date()).await?;
        let suspended = switch.suspended;
        let fees = read::fees(conn, code, in_jst(now).date()).await?;
        let mut people: Vec<&ResidentRef> = vec![&requester.id];
        people.extend(household.iter().map(|r| &r.id));
        if let Some((_, members)) = &koseki {
            people.extend(members.iter().map(|m| &m.person_ref));
        }
        people.sort();
        people.dedup();
        let support_measures = read::support_measures(conn, &people).await?;
        let koseki_id = koseki.as_ref().map(|(k, _)| k.id.as_str());
        let pending = read::pending_for_people(conn, &people, koseki_id).await?;
        let pending_people = people.into_iter().cloned().collect();
        let pending_koseki = koseki_id.map(str::to_owned);
        Ok(Context {
            koseki_in_full: tokio::sync::OnceCell::new(),
            pending,
            pending_people,
            pending_koseki,
            municipality,
            requester,
            household,
            koseki,
            windows,
            suspended,
            in_maintenance,
            closed,
            now,
            fees,
            support_measures,
        })
    }

    fn fee(&self, ty: CertificateType) -> Option<u32> {
        self.fees
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, fee)| *fee)
    }

    fn support_measure(&self, person: &ResidentRef) -> Option<SupportMeasure> {
        self.support_measures
            .iter()
            .find(|(p, _)| p == person)
            .map(|(_, measure)| *measure)
    }

    /// The changes not reflected yet on resident `id`, from those read with the context (or
    /// read now, in the same transaction, for someone outside it).
    async fn pending_for_resident(
        &self,
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Vec<PendingChange>, IssuerError> {
        if !self.pending_people.contains(id) {
            return read::pending_for_resident(conn, id).await;
        }
        Ok(self
            .pending
            .iter()
            .filter(|(resident, _, _)| resident.as_deref() == Some(id.as_str()))
            .map(|(_, _, change)| change.clone())
            .collect())
    }

    /// The changes not reflected yet on 戸籍 `koseki_id` (see [`Context::pending_for_resident`]).
    async fn pending_for_koseki(
        &self,
        conn: &mut AnyConnection,
        koseki_id: &str,
    ) -> Result<Vec<PendingChange>, IssuerError> {
        if self.pending_koseki.as_deref() != Some(koseki_id) {
            return read::pending_for_koseki(conn, koseki_id).await;
        }
        Ok(self
            .pending
            .iter()
            .filter(|(_, koseki, _)| koseki.as_deref() == Some(koseki_id))
            .map(|(_, _, change)| change.clone())
            .collect())
    }

    /// The 戸籍's members with their 身分事項 and 附票 (see `koseki_in_full`).
    async fn koseki_members_in_full(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<&[KosekiMember], IssuerError> {
        let Some((koseki, members)) = &self.koseki else {
            return Ok(&[]);
        };
        let full = self
            .koseki_in_full
            .get_or_try_init(|| async {
                let mut full = members.clone();
                read::koseki_member_details(conn, &koseki.id, &mut full).await?;
                Ok::<_, IssuerError>(full)
            })
            .await?;
        Ok(full)
    }

    fn window(&self, ty: CertificateType) -> Option<&ServiceWindow> {
        self.windows.iter().find(|w| w.ty == ty)
    }

    fn offered_tax_years(&self) -> Vec<u32> {
        rules::offered_tax_years(self.municipality.tax_years_offered, self.now)
    }

    /// Household members who can appear on a 住民票 now (not removed from the register).
    fn current_household(&self) -> impl Iterator<Item = &Resident> {
        self.household.iter().filter(|r| {
            matches!(
                r.status,
                ResidentStatus::Active | ResidentStatus::MoveOutFiled
            )
        })
    }
}

fn refuse(reason: Reason) -> IssuerError {
    IssuerError::Refused(reason)
}

fn check(result: Result<(), Reason>) -> Result<(), IssuerError> {
    result.map_err(IssuerError::Refused)
}

/// Checks the options against what the type accepts.
fn check_options(item: &RequestItem) -> Result<(), IssuerError> {
    let accepted = item.ty.accepted_options();
    if let Some(name) = item
        .options
        .set_option_names()
        .into_iter()
        .find(|name| !accepted.contains(name))
    {
        // Named, so the BadRequest says which option (the contract promises the field).
        return Err(IssuerError::InvalidField {
            field: option_field(name),
        });
    }
    if item.ty == CertificateType::IncomeTax && item.options.fiscal_year.is_none() {
        return Err(IssuerError::InvalidField {
            field: "options.fiscal_year",
        });
    }
    Ok(())
}

/// The `kiosk.v1` field of an option, by its name in `CertificateOptions::set_option_names`.
fn option_field(name: &str) -> &'static str {
    match name {
        "include_household_head" => "options.include_household_head",
        "include_honseki" => "options.include_honseki",
        "include_individual_number" => "options.include_individual_number",
        "include_former_surname" => "options.include_former_surname",
        "include_foreign_resident_items" => "options.include_foreign_resident_items",
        "fiscal_year" => "options.fiscal_year",
        _ => "options",
    }
}

/// Decides one item on the current register and gathers the content it prints.
///
/// The checks run in the order the contract promises their reasons: the type's service and
/// the order's shape first, then the requester, then the subjects, then what the type's
/// certificate prints (which reads more of the register).
async fn decide(
    conn: &mut AnyConnection,
    ctx: &Context,
    item: &RequestItem,
) -> Result<Decided, IssuerError> {
    let fee_yen = check_orderable(ctx, item)?;
    check_requester(ctx)?;
    let subjects = permitted_subjects(ctx, item)?;
    let blocks = match item.ty {
        CertificateType::ResidentRecord | CertificateType::ResidentRecordItems => {
            resident_record_blocks(conn, ctx, item, &subjects).await?
        }
        CertificateType::SealRegistration => seal_registration_blocks(conn, ctx, item).await?,
        CertificateType::IncomeTax => income_tax_blocks(conn, ctx, item).await?,
        CertificateType::KosekiFull
        | CertificateType::KosekiIndividual
        | CertificateType::KosekiFuhyo => koseki_blocks(conn, ctx, item, &subjects).await?,
    };
    Ok(Decided {
        item: item.clone(),
        fee_yen,
        blocks,
    })
}

/// Whether the type can be ordered now as asked: its service window, its fee, the number of
/// copies and the options it accepts. Returns the fee per copy.
fn check_orderable(ctx: &Context, item: &RequestItem) -> Result<u32, IssuerError> {
    let ty = item.ty;
    check(rules::service_window(
        ctx.window(ty),
        ctx.suspended,
        ctx.in_maintenance,
        ctx.closed,
        ctx.now,
    ))?;
    let fee_yen = ctx
        .fee(ty)
        .ok_or(refuse(Reason::CertificateTypeNotOffered))?;
    let max_copies = ctx.window(ty).map_or(0, |w| w.max_copies);
    if item.copies == 0 {
        return Err(IssuerError::InvalidField { field: "copies" });
    }
    if item.copies > max_copies {
        return Err(IssuerError::TooManyCopies);
    }
    check_options(item)?;
    Ok(fee_yen)
}

/// Whether the requester may obtain anything at a store: their status, no support measure
/// on them, and the municipality's minimum age.
fn check_requester(ctx: &Context) -> Result<(), IssuerError> {
    let requester = &ctx.requester;
    check(rules::requester_status(requester))?;
    if ctx.support_measure(&requester.id).is_some() {
        return Err(refuse(Reason::SupportMeasure));
    }
    check(rules::minimum_age(
        requester,
        ctx.municipality.minimum_age,
        ctx.now,
    ))
}

/// The people the certificate is about (the requester when the item names nobody), each
/// once, as many as the type allows, and each one the requester may obtain it about.
fn permitted_subjects(ctx: &Context, item: &RequestItem) -> Result<Vec<ResidentRef>, IssuerError> {
    let ty = item.ty;
    let requester = &ctx.requester;
    let subjects: Vec<ResidentRef> = if item.subject_refs.is_empty() {
        vec![requester.id.clone()]
    } else {
        let mut seen = item.subject_refs.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != item.subject_refs.len() {
            return Err(IssuerError::InvalidField {
                field: "subject_refs",
            });
        }
        item.subject_refs.clone()
    };
    let single_subject = !matches!(
        ty,
        CertificateType::ResidentRecord
            | CertificateType::KosekiFull
            | CertificateType::KosekiFuhyo
    );
    if single_subject && subjects.len() != 1 {
        return Err(IssuerError::InvalidField {
            field: "subject_refs",
        });
    }
    if ty.is_koseki() && ctx.koseki.is_none() {
        // The requester's 戸籍 is not kept here (本籍 elsewhere, or 除籍).
        return Err(refuse(Reason::CertificateTypeNotOffered));
    }
    let koseki_members: &[KosekiMember] = ctx.koseki.as_ref().map_or(&[], |(_, m)| m);
    for s in &subjects {
        check(rules::permitted_subject(
            ty,
            requester,
            s,
            &ctx.household,
            koseki_members,
        ))?;
    }
    Ok(subjects)
}

/// 住民票 (the whole record or its items): nobody in the household moving out, no subject
/// deceased or with a change pending, no support measure among them; then the record, with
/// individual numbers read only when asked for.
async fn resident_record_blocks(
    conn: &mut AnyConnection,
    ctx: &Context,
    item: &RequestItem,
    subjects: &[ResidentRef],
) -> Result<Vec<Block>, IssuerError> {
    let ty = item.ty;
    check(rules::household_moving_out(ty, &ctx.household))?;
    let mut people = Vec::new();
    for s in subjects {
        let person = ctx
            .household
            .iter()
            .find(|r| r.id == *s)
            .ok_or(refuse(Reason::NotPermittedSubject))?;
        check(rules::deceased(person))?;
        people.push(person);
    }
    let mut measures = Vec::new();
    for person in &people {
        measures.push(ctx.support_measure(&person.id));
        check(rules::pending_changes(
            &ctx.pending_for_resident(conn, &person.id).await?,
        ))?;
    }
    check(rules::support_measure(ty, None, &measures))?;
    if ty == CertificateType::ResidentRecordItems {
        return content::resident_record_items(&item.options, people[0]);
    }
    let mut record = Vec::new();
    for person in &people {
        let individual_number = if item.options.include_individual_number {
            read::individual_number(conn, &person.id).await?
        } else {
            None
        };
        record.push(RecordPerson {
            resident: person,
            individual_number,
        });
    }
    let head = ctx.household.iter().find(|r| r.relationship == "世帯主");
    content::resident_record(&item.options, head, &record)
}

/// 印鑑登録証明書: no change pending on the requester, and a live seal registration.
async fn seal_registration_blocks(
    conn: &mut AnyConnection,
    ctx: &Context,
    item: &RequestItem,
) -> Result<Vec<Block>, IssuerError> {
    let requester = &ctx.requester;
    check(rules::pending_changes(
        &ctx.pending_for_resident(conn, &requester.id).await?,
    ))?;
    let seal = read::live_seal(conn, &requester.id).await?;
    check(rules::live_seal(seal.as_ref()))?;
    match seal {
        Some(seal) => content::seal_registration(&item.options, requester, &seal),
        None => Err(refuse(Reason::NoSealRegistration)),
    }
}

/// 所得・課税証明書: a fiscal year the municipality offers, with a tax record for it.
async fn income_tax_blocks(
    conn: &mut AnyConnection,
    ctx: &Context,
    item: &RequestItem,
) -> Result<Vec<Block>, IssuerError> {
    let requester = &ctx.requester;
    let year = item.options.fiscal_year.unwrap_or_default();
    let record = read::tax_record(conn, &requester.id, year).await?;
    check(rules::tax_data(
        year,
        &ctx.offered_tax_years(),
        record.as_ref(),
    ))?;
    match record {
        Some(record) => content::income_tax(requester, &record),
        None => Err(refuse(Reason::NoTaxData)),
    }
}

/// 戸籍 certificates and the 附票: no change pending on the 戸籍, its members read in full,
/// and for the 附票 no support measure on anyone it lists.
async fn koseki_blocks(
    conn: &mut AnyConnection,
    ctx: &Context,
    item: &RequestItem,
    subjects: &[ResidentRef],
) -> Result<Vec<Block>, IssuerError> {
    let ty = item.ty;
    let requester = &ctx.requester;
    let (koseki, _) = ctx
        .koseki
        .as_ref()
        .ok_or(refuse(Reason::CertificateTypeNotOffered))?;
    check(rules::pending_changes(
        &ctx.pending_for_koseki(conn, &koseki.id).await?,
    ))?;
    let members = ctx.koseki_members_in_full(conn).await?;
    if ty == CertificateType::KosekiFuhyo {
        let mut measures = Vec::new();
        for m in members.iter().filter(|m| m.present) {
            measures.push(ctx.support_measure(&m.person_ref));
        }
        check(rules::support_measure(ty, None, &measures))?;
        content::fuhyo(&item.options, koseki, members, &requester.id)
    } else {
        let only = (ty == CertificateType::KosekiIndividual).then(|| &subjects[0]);
        content::koseki(koseki, members, only, &requester.id)
    }
}

/// A digest of the order, so that a repeated Render with the same issuance id can be told
/// apart from a different order reusing it.
fn request_digest(
    requester: &ResidentRef,
    items: &[RequestItem],
    issued_at: OffsetDateTime,
) -> Vec<u8> {
    let mut text = format!("{}\n{}\n", requester, unix_ms(issued_at));
    for item in items {
        let o = &item.options;
        text.push_str(&format!(
            "{}|{}|{}|{}|{}|{}|{:?}|{}|",
            item.ty.code(),
            item.copies,
            o.include_household_head,
            o.include_honseki,
            o.include_individual_number,
            o.include_former_surname,
            o.fiscal_year,
            o.include_foreign_resident_items,
        ));
        for s in &item.subject_refs {
            text.push_str(s.as_str());
            text.push(',');
        }
        text.push('\n');
    }
    digest(&SHA256, text.as_bytes()).as_ref().to_vec()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Whether a database error is one a retry of the whole transaction resolves: a PostgreSQL
/// serialization failure under REPEATABLE READ, or a unique violation from a concurrent
/// Render of the same issuance id (the retry then finds it and answers from the registry).
fn retryable(error: &IssuerError) -> bool {
    match error {
        IssuerError::Database(sqlx::Error::Database(db)) => {
            matches!(
                db.code().as_deref(),
                Some("40001" | "23505" | "2067" | "1555")
            )
        }
        _ => false,
    }
}

const SERIAL_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Issuer {
    /// An issuer for `municipality` over `register`, rendering with `renderer`.
    pub fn new(
        register: Register,
        municipality: MunicipalityCode,
        renderer: Arc<dyn CertificateRenderer>,
    ) -> Issuer {
        Issuer {
            register,
            municipality,
            renderer,
            random: SystemRandom::new(),
        }
    }

    /// The register.
    pub fn register(&self) -> &Register {
        &self.register
    }

    /// The municipality served.
    pub fn municipality(&self) -> &MunicipalityCode {
        &self.municipality
    }

    /// The menu for `resident` now.
    pub async fn get_menu(&self, resident: &ResidentRef) -> Result<Menu, IssuerError> {
        self.get_menu_at(resident, OffsetDateTime::now_utc()).await
    }

    /// The menu for `resident` at `now` (a test or a replay may pin the clock).
    pub async fn get_menu_at(
        &self,
        resident: &ResidentRef,
        now: OffsetDateTime,
    ) -> Result<Menu, IssuerError> {
        let mut tx = self.register.begin_read().await?;
        let ctx = Context::load(&mut tx, &self.municipality, resident, now).await?;
        let requester = &ctx.requester;

        let mut members = vec![Member {
            subject_ref: requester.id.clone(),
            display_name: requester.full_name(),
            relation: MemberRelation::SelfPerson,
        }];
        let mut household_refs = vec![requester.id.clone()];
        for r in ctx.current_household().filter(|r| r.id != requester.id) {
            household_refs.push(r.id.clone());
            members.push(Member {
                subject_ref: r.id.clone(),
                display_name: r.full_name(),
                relation: MemberRelation::Household,
            });
        }
        let mut koseki_refs = Vec::new();
        if let Some((_, koseki_members)) = &ctx.koseki
            && koseki_members.iter().any(|m| m.person_ref == requester.id)
        {
            for m in koseki_members {
                koseki_refs.push(m.person_ref.clone());
                if !members.iter().any(|x| x.subject_ref == m.person_ref) {
                    members.push(Member {
                        subject_ref: m.person_ref.clone(),
                        display_name: m.full_name(),
                        relation: MemberRelation::Koseki,
                    });
                }
            }
        }

        let mut entries = Vec::new();
        for window in ctx.windows.iter().filter(|w| w.offered) {
            let ty = window.ty;
            let mut fiscal_years = Vec::new();
            let mut probe = RequestItem {
                ty,
                options: Default::default(),
                subject_refs: Vec::new(),
                copies: 1,
            };
            if ty == CertificateType::IncomeTax {
                let have = read::tax_years(&mut tx, &requester.id).await?;
                fiscal_years = ctx
                    .offered_tax_years()
                    .into_iter()
                    .filter(|y| have.contains(y))
                    .collect();
                probe.options.fiscal_year = Some(
                    fiscal_years
                        .first()
                        .copied()
                        .unwrap_or_else(|| ctx.offered_tax_years().first().copied().unwrap_or(0)),
                );
            }
            let unavailable = match decide(&mut tx, &ctx, &probe).await {
                Ok(_) => None,
                Err(IssuerError::Refused(reason)) => Some(reason),
                Err(other) => return Err(other),
            };
            let fee_yen = ctx.fee(ty).unwrap_or(0);
            let selectable_subject_refs = match ty {
                CertificateType::ResidentRecord => household_refs.clone(),
                CertificateType::KosekiIndividual => koseki_refs.clone(),
                _ => vec![requester.id.clone()],
            };
            entries.push(MenuEntry {
                ty,
                unavailable,
                fee_yen,
                max_copies: window.max_copies,
                fiscal_years,
                selectable_subject_refs,
            });
        }
        tx.rollback().await?;
        Ok(Menu {
            entries,
            members,
            municipality_code: self.municipality.clone(),
            municipality_name: ctx.municipality.name.clone(),
        })
    }

    /// Prices an order at `now` after deciding every item on the current register exactly as
    /// [`Issuer::render`] would (same rules, same transaction discipline), without rendering
    /// or recording anything.
    pub async fn quote(
        &self,
        requester: &ResidentRef,
        items: &[RequestItem],
        now: OffsetDateTime,
    ) -> Result<Vec<QuoteLine>, IssuerError> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(IssuerError::InvalidField { field: "items" });
        }
        let mut tx = self.register.begin_read().await?;
        let ctx = Context::load(&mut tx, &self.municipality, requester, now).await?;
        let mut lines = Vec::new();
        for item in items {
            let d = decide(&mut tx, &ctx, item).await?;
            lines.push(QuoteLine {
                ty: item.ty,
                copies: item.copies,
                fee_yen: d.fee_yen,
            });
        }
        tx.rollback().await?;
        Ok(lines)
    }

    /// Decides and renders every document of an order, all or nothing, and records each in
    /// the issued-document registry in the same transaction. A repeated call with the same
    /// issuance id and the same order returns the recorded documents; with another order it
    /// is refused ([`IssuerError::IssuanceConflict`]).
    pub async fn render(
        &self,
        issuance_id: &IssuanceId,
        requester: &ResidentRef,
        items: &[RequestItem],
        issued_at: OffsetDateTime,
    ) -> Result<Vec<RenderedDocument>, IssuerError> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(IssuerError::InvalidField { field: "items" });
        }
        let request_digest = request_digest(requester, items, issued_at);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .render_once(issuance_id, requester, items, issued_at, &request_digest)
                .await
            {
                Err(error) if attempt < 4 && retryable(&error) => continue,
                other => return other,
            }
        }
    }

    async fn render_once(
        &self,
        issuance_id: &IssuanceId,
        requester: &ResidentRef,
        items: &[RequestItem],
        issued_at: OffsetDateTime,
        request_digest: &[u8],
    ) -> Result<Vec<RenderedDocument>, IssuerError> {
        // Declared before `tx`, so dropped after it: the turn passes on once the tx has ended.
        let _turn = self.register.writer_turn().await;
        let mut tx = self.register.begin().await?;
        // Claim the issuance id first: the usual Render is new, and then this one statement
        // both checks and records it (a refusal or failure below rolls it back). A repeated
        // Render finds the claim and answers from the registry. Under PostgreSQL a concurrent
        // claim of the same id ends in a serialization failure or unique violation, which
        // `render` retries into the repeated-Render path.
        let claimed = sqlx::query(
            "INSERT INTO render_requests (issuance_id, municipality_code, requester_ref, \
             request_digest, rendered_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (issuance_id) DO NOTHING",
        )
        .bind(issuance_id.as_str())
        .bind(self.municipality.as_str())
        .bind(requester.as_str())
        .bind(request_digest.to_vec())
        .bind(unix_ms(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            let row =
                sqlx::query("SELECT request_digest FROM render_requests WHERE issuance_id = $1")
                    .bind(issuance_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            let stored: Vec<u8> = row.try_get("request_digest")?;
            if stored != request_digest {
                return Err(IssuerError::IssuanceConflict);
            }
            let documents = Self::recorded(&mut tx, issuance_id).await?;
            tx.rollback().await?;
            return Ok(documents);
        }

        let ctx = Context::load(&mut tx, &self.municipality, requester, issued_at).await?;
        let mut decided = Vec::with_capacity(items.len());
        for item in items {
            decided.push(decide(&mut tx, &ctx, item).await?);
        }

        let doc_municipality = DocMunicipality {
            code: self.municipality.clone(),
            name: format!("{}{}", ctx.municipality.prefecture, ctx.municipality.name),
            mayor_title: ctx.municipality.mayor_title.clone(),
            mayor_name: ctx.municipality.mayor_name.clone(),
        };
        let doc_issued_at = IssuedAt::from_unix_seconds(issued_at.unix_timestamp())
            .map_err(|_| IssuerError::InvalidField { field: "issued_at" })?;

        let mut documents = Vec::new();
        for d in &decided {
            for _ in 0..d.item.copies {
                let serial = self.new_serial(issued_at)?;
                let certificate = Certificate::new(
                    Header {
                        kind: d.item.ty,
                        municipality: doc_municipality.clone(),
                        serial: Serial::parse(&serial)
                            .map_err(|_| IssuerError::Corrupt { what: "serial" })?,
                        issuance_id: issuance_id.clone(),
                        issued_at: doc_issued_at,
                        certification: None,
                    },
                    d.blocks.clone(),
                )
                .map_err(|e| IssuerError::Render(e.to_string()))?;
                let content_digest = certificate.content_digest();
                let output = self.renderer.render(&certificate)?;
                documents.push(RenderedDocument {
                    serial,
                    ty: d.item.ty,
                    pdf_sha256: sha256(&output.pdf),
                    pdf: output.pdf,
                    pages: output.pages,
                    fee_yen: d.fee_yen,
                    content_digest,
                });
            }
        }

        self.record_pending(&mut tx, issuance_id, requester, issued_at, &documents)
            .await?;
        tx.commit().await?;
        Ok(documents)
    }

    /// A new document serial: municipality, JST issue date and 10 random characters
    /// (Crockford base32). Random rather than a counter, so concurrent renders never contend
    /// on one counter row; the registry's primary key rejects the (2^-50) collision.
    fn new_serial(&self, issued_at: OffsetDateTime) -> Result<String, IssuerError> {
        let mut bytes = [0u8; 10];
        self.random
            .fill(&mut bytes)
            .map_err(|_| IssuerError::Render("system random failed".into()))?;
        let random: String = bytes
            .iter()
            .map(|b| char::from(SERIAL_ALPHABET[usize::from(b % 32)]))
            .collect();
        let date = in_jst(issued_at).date();
        Ok(format!(
            "{}-{:02}{:02}{:02}-{random}",
            self.municipality,
            date.year() % 100,
            u8::from(date.month()),
            date.day()
        ))
    }
}
