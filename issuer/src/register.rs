//! The register store: one code path over `sqlx::AnyPool` for SQLite and PostgreSQL.
//!
//! Readers take a `&mut AnyConnection` so that the issuer runs all of them inside the one
//! transaction that decides and records an order. Nothing here caches register data.

use std::fmt;
use std::time::Duration;

use kiosk_db::{Database, DbError, Migrations, OpenOptions};
use kiosk_document::{CertificateType, ResidentRef};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, Transaction};
use time::Date;
use tokio::sync::OwnedMutexGuard;

use crate::calendar::{format_date, parse_date};
use crate::error::IssuerError;

pub use kiosk_db::Backend;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A municipality's register database.
#[derive(Debug, Clone)]
pub struct Register {
    db: Database,
}

impl Register {
    /// Opens (and for SQLite creates) the register at `url` and applies the schema.
    ///
    /// Through the one opening path of every component (`kiosk_db`): SQLite in WAL mode with
    /// `synchronous=FULL`, because the registry of issued documents holds the only copy of
    /// each PDF and a commit it reported must survive power loss; PostgreSQL as configured.
    pub async fn open(url: &str) -> Result<Register, IssuerError> {
        Register::open_with(url, 8).await
    }

    /// As [`Register::open`], with at most `max_connections` pooled connections.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Register, IssuerError> {
        let options = OpenOptions {
            max_connections,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        };
        let migrations = Migrations {
            sqlite: &SQLITE_MIGRATOR,
            postgres: &POSTGRES_MIGRATOR,
            ignore_missing: false,
        };
        let db = Database::open(url, options, migrations)
            .await
            .map_err(|e| match e {
                DbError::UnsupportedUrl => IssuerError::InvalidField {
                    field: "database_url",
                },
                DbError::Sqlx(e) => IssuerError::Database(e),
                DbError::Migrate(e) => IssuerError::Migrate(e),
            })?;
        Ok(Register { db })
    }

    /// The pool, for callers that run their own statements.
    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Waits for this process's turn to write; hold the guard until the write transaction has
    /// ended. SQLite only (`None` on PostgreSQL, whose lock queue does not poll): SQLite's busy
    /// handler makes a blocked writer sleep and poll in growing steps up to 100 ms, so under
    /// load writers idled while the lock was free. Queueing in-process is FIFO and wakes the
    /// next writer as soon as the previous one ends; other processes still meet the busy
    /// timeout.
    pub async fn writer_turn(&self) -> Option<OwnedMutexGuard<()>> {
        self.db.writer_turn().await
    }

    /// Begins the transaction in which an order is decided and recorded.
    ///
    /// SQLite: `BEGIN IMMEDIATE`, so the write at the end cannot fail on a snapshot another
    /// writer moved past (SQLITE_BUSY_SNAPSHOT); the busy timeout queues writers instead.
    /// PostgreSQL: REPEATABLE READ, so every read of one order sees the same snapshot, taken
    /// at its first statement — after the request arrived, so every change committed before
    /// the request is in it.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, IssuerError> {
        let statement = match self.db.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        };
        Ok(self.pool().begin_with(statement).await?)
    }

    /// Begins a read-only transaction (menus and quotes): one consistent snapshot of the
    /// current register, without taking SQLite's write lock, so menus never queue behind
    /// renders.
    pub async fn begin_read(&self) -> Result<Transaction<'static, Any>, IssuerError> {
        let statement = match self.db.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        Ok(self.pool().begin_with(statement).await?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool().close().await;
    }
}

/// Begins a plain write transaction on one connection (used by admin changes and the
/// synthetic register generator, `kiosk_devkit::generator`).
pub async fn begin_plain(conn: &mut AnyConnection) -> Result<Transaction<'_, Any>, IssuerError> {
    Ok(conn.begin().await?)
}

fn text(row: &AnyRow, column: &str) -> Result<String, IssuerError> {
    Ok(row.try_get::<String, _>(column)?)
}

fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, IssuerError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

fn int(row: &AnyRow, column: &str) -> Result<i64, IssuerError> {
    Ok(row.try_get::<i64, _>(column)?)
}

fn flag(row: &AnyRow, column: &str) -> Result<bool, IssuerError> {
    Ok(int(row, column)? != 0)
}

fn small(row: &AnyRow, column: &str, what: &'static str) -> Result<u32, IssuerError> {
    u32::try_from(int(row, column)?).map_err(|_| IssuerError::Corrupt { what })
}

fn date(row: &AnyRow, column: &str, what: &'static str) -> Result<Date, IssuerError> {
    parse_date(&text(row, column)?, what)
}

fn opt_date(row: &AnyRow, column: &str, what: &'static str) -> Result<Option<Date>, IssuerError> {
    opt_text(row, column)?
        .map(|value| parse_date(&value, what))
        .transpose()
}

fn resident_ref(row: &AnyRow, column: &str) -> Result<ResidentRef, IssuerError> {
    ResidentRef::parse(&text(row, column)?).map_err(|_| IssuerError::Corrupt {
        what: "resident reference",
    })
}

/// A municipality served by this register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 6-digit code.
    pub code: String,
    /// Name as printed (千代田区).
    pub name: String,
    /// Prefecture (東京都).
    pub prefecture: String,
    /// The mayor's title as printed (千代田区長).
    pub mayor_title: String,
    /// The mayor's name as printed.
    pub mayor_name: String,
    /// Minimum age for store issuance.
    pub minimum_age: u32,
    /// Fiscal years of 所得・課税証明書 offered, counting back from the newest.
    pub tax_years_offered: u32,
}

/// A resident's status in the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentStatus {
    /// Living here.
    Active,
    /// Filed a 転出届; still registered until the move.
    MoveOutFiled,
    /// Moved out (消除).
    MovedOut,
    /// Died (消除).
    Deceased,
}

impl ResidentStatus {
    /// Database code.
    pub fn code(self) -> &'static str {
        match self {
            ResidentStatus::Active => "active",
            ResidentStatus::MoveOutFiled => "move_out_filed",
            ResidentStatus::MovedOut => "moved_out",
            ResidentStatus::Deceased => "deceased",
        }
    }

    fn parse(code: &str) -> Result<ResidentStatus, IssuerError> {
        match code {
            "active" => Ok(ResidentStatus::Active),
            "move_out_filed" => Ok(ResidentStatus::MoveOutFiled),
            "moved_out" => Ok(ResidentStatus::MovedOut),
            "deceased" => Ok(ResidentStatus::Deceased),
            _ => Err(IssuerError::Corrupt {
                what: "resident status",
            }),
        }
    }
}

/// Sex as the register records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// 男.
    Male,
    /// 女.
    Female,
}

impl Sex {
    /// Database code (1 男, 2 女).
    pub fn code(self) -> i64 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
        }
    }

    fn parse(code: i64) -> Result<Sex, IssuerError> {
        match code {
            1 => Ok(Sex::Male),
            2 => Ok(Sex::Female),
            _ => Err(IssuerError::Corrupt { what: "sex" }),
        }
    }

    /// As printed: 男 or 女.
    pub fn japanese(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
}

/// The items a foreign resident's 住民票 carries (外国人住民の記載事項).
#[derive(Clone, PartialEq, Eq)]
pub struct ForeignResidentItems {
    /// 国籍・地域.
    pub nationality: String,
    /// 在留資格.
    pub residence_status: String,
    /// 在留期間の満了の日.
    pub period_of_stay_until: Date,
    /// 在留カード等の番号.
    pub residence_card_number: String,
}

/// One resident as the register holds them. Debug shows only the reference and status.
#[derive(Clone, PartialEq, Eq)]
pub struct Resident {
    /// The opaque reference (the row id).
    pub id: ResidentRef,
    /// The municipality.
    pub municipality_code: String,
    /// The household.
    pub household_id: String,
    /// 氏.
    pub family_name: String,
    /// 名.
    pub given_name: String,
    /// 氏 (kana).
    pub family_name_kana: String,
    /// 名 (kana).
    pub given_name_kana: String,
    /// 旧氏.
    pub former_surname: Option<String>,
    /// 旧氏 (kana).
    pub former_surname_kana: Option<String>,
    /// 生年月日.
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 続柄 to the household head.
    pub relationship: String,
    /// 住所.
    pub address: String,
    /// 住民となった年月日.
    pub resident_since: Date,
    /// 住所を定めた年月日.
    pub address_since: Date,
    /// 前住所.
    pub previous_address: Option<String>,
    /// 本籍.
    pub honseki: Option<String>,
    /// 筆頭者.
    pub hittosha: Option<String>,
    /// The 戸籍 when kept here.
    pub koseki_id: Option<String>,
    /// Status.
    pub status: ResidentStatus,
    /// When the status last changed.
    pub status_date: Option<Date>,
    /// Foreign residents' items.
    pub foreign: Option<ForeignResidentItems>,
}

impl Resident {
    /// 氏名 as printed, with a full-width space.
    pub fn full_name(&self) -> String {
        format!("{}\u{3000}{}", self.family_name, self.given_name)
    }

    /// 氏名 in kana.
    pub fn full_name_kana(&self) -> String {
        format!("{}\u{3000}{}", self.family_name_kana, self.given_name_kana)
    }
}

impl fmt::Debug for Resident {
    // Names, addresses and dates are personal data and must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resident")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

const RESIDENT_COLUMNS: &str = "id, municipality_code, household_id, family_name, given_name, \
    family_name_kana, given_name_kana, former_surname, former_surname_kana, birth_date, sex, \
    relationship, address, resident_since, address_since, previous_address, honseki, hittosha, \
    koseki_id, status, status_date, nationality, residence_status, period_of_stay_until, \
    residence_card_number";

fn resident_from_row(row: &AnyRow) -> Result<Resident, IssuerError> {
    let foreign = match opt_text(row, "nationality")? {
        Some(nationality) => Some(ForeignResidentItems {
            nationality,
            residence_status: opt_text(row, "residence_status")?.unwrap_or_default(),
            period_of_stay_until: opt_date(row, "period_of_stay_until", "period of stay")?.ok_or(
                IssuerError::Corrupt {
                    what: "period of stay",
                },
            )?,
            residence_card_number: opt_text(row, "residence_card_number")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Resident {
        id: resident_ref(row, "id")?,
        municipality_code: text(row, "municipality_code")?,
        household_id: text(row, "household_id")?,
        family_name: text(row, "family_name")?,
        given_name: text(row, "given_name")?,
        family_name_kana: text(row, "family_name_kana")?,
        given_name_kana: text(row, "given_name_kana")?,
        former_surname: opt_text(row, "former_surname")?,
        former_surname_kana: opt_text(row, "former_surname_kana")?,
        birth_date: date(row, "birth_date", "birth date")?,
        sex: Sex::parse(int(row, "sex")?)?,
        relationship: text(row, "relationship")?,
        address: text(row, "address")?,
        resident_since: date(row, "resident_since", "resident since")?,
        address_since: date(row, "address_since", "address since")?,
        previous_address: opt_text(row, "previous_address")?,
        honseki: opt_text(row, "honseki")?,
        hittosha: opt_text(row, "hittosha")?,
        koseki_id: opt_text(row, "koseki_id")?,
        status: ResidentStatus::parse(&text(row, "status")?)?,
        status_date: opt_date(row, "status_date", "status date")?,
        foreign,
    })
}

/// A seal registration with its impression.
#[derive(Clone, PartialEq, Eq)]
pub struct SealRegistration {
    /// 登録番号.
    pub registration_number: String,
    /// The holder.
    pub resident_id: ResidentRef,
    /// 登録年月日.
    pub registered_on: Date,
    /// The impression (PNG).
    pub image_png: Vec<u8>,
}

impl fmt::Debug for SealRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealRegistration")
            .field("resident_id", &self.resident_id)
            .finish_non_exhaustive()
    }
}

/// One fiscal year's income and tax of one resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRecord {
    /// 年度.
    pub fiscal_year: u32,
    /// 給与収入.
    pub salary_income: i64,
    /// 総所得金額.
    pub total_income: i64,
    /// 所得控除合計.
    pub deductions: i64,
    /// 課税標準額.
    pub taxable_income: i64,
    /// 市町村民税.
    pub municipal_tax: i64,
    /// 道府県民税.
    pub prefectural_tax: i64,
    /// 扶養人数.
    pub dependents: u32,
}

/// A 戸籍 kept by this municipality.
#[derive(Clone, PartialEq, Eq)]
pub struct Koseki {
    /// Row id.
    pub id: String,
    /// 本籍.
    pub honseki: String,
    /// 筆頭者.
    pub hittosha_name: String,
    /// 編製日.
    pub created_on: Date,
    /// Whether it is still current (not 除籍).
    pub current: bool,
}

impl fmt::Debug for Koseki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Koseki")
            .field("id", &self.id)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// One event in a member's 身分事項.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KosekiEvent {
    /// 出生, 婚姻, 死亡 ...
    pub kind: String,
    /// When.
    pub date: Date,
    /// Where (出生地, 届出地 ...).
    pub place: Option<String>,
    /// Further text (配偶者氏名 ...).
    pub detail: Option<String>,
}

/// One address of a member's 附票.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuhyoEntry {
    /// 住所.
    pub address: String,
    /// 住所を定めた年月日.
    pub since: Date,
}

/// A member of a 戸籍, with their events and 附票 entries.
#[derive(Clone, PartialEq, Eq)]
pub struct KosekiMember {
    /// Position in the 戸籍.
    pub member_no: u32,
    /// The opaque reference (the resident id when the member lives here).
    pub person_ref: ResidentRef,
    /// 氏.
    pub family_name: String,
    /// 名.
    pub given_name: String,
    /// 生年月日.
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 父.
    pub father_name: Option<String>,
    /// 母.
    pub mother_name: Option<String>,
    /// 父母との続柄.
    pub parent_relationship: String,
    /// 筆頭者 / 夫 / 妻 / 子.
    pub role: String,
    /// Still in the 戸籍 (not 除籍).
    pub present: bool,
    /// 身分事項.
    pub events: Vec<KosekiEvent>,
    /// 附票 entries, oldest first.
    pub fuhyo: Vec<FuhyoEntry>,
}

impl KosekiMember {
    /// 氏名 as printed.
    pub fn full_name(&self) -> String {
        format!("{}\u{3000}{}", self.family_name, self.given_name)
    }
}

impl fmt::Debug for KosekiMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KosekiMember")
            .field("member_no", &self.member_no)
            .field("person_ref", &self.person_ref)
            .finish_non_exhaustive()
    }
}

/// A support measure (支援措置) on a resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportMeasure {
    /// Set in the 住民票 system.
    pub covers_resident_record: bool,
    /// Set in the 戸籍の附票 system.
    pub covers_fuhyo: bool,
}

/// A change filed but not yet reflected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Row id.
    pub id: String,
    /// Kind (転入, 住所変更, 外字登録, 戸籍届出 ...).
    pub kind: String,
}

/// A type's service window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceWindow {
    /// The type.
    pub ty: CertificateType,
    /// Offered at stores at all.
    pub offered: bool,
    /// Weekdays only (戸籍 depends on office systems).
    pub weekdays_only: bool,
    /// Opening, minutes after midnight JST.
    pub opens_at_minute: u32,
    /// Closing, minutes after midnight JST (exclusive).
    pub closes_at_minute: u32,
    /// Most copies in one order.
    pub max_copies: u32,
}

/// A configured closed day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedDate {
    /// Closed only for weekday-only types (a public holiday) rather than for all.
    pub weekday_types_only: bool,
}

/// The municipality's kill switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSwitch {
    /// Suspended now.
    pub suspended: bool,
}

/// Reads of the current register, to run inside a transaction.
pub mod read {
    use super::*;

    /// The municipality `code`.
    pub async fn municipality(
        conn: &mut AnyConnection,
        code: &str,
    ) -> Result<Option<Municipality>, IssuerError> {
        let row = sqlx::query(
            "SELECT code, name, prefecture, mayor_title, mayor_name, minimum_age, \
             tax_years_offered FROM municipalities WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(Municipality {
                code: text(&row, "code")?,
                name: text(&row, "name")?,
                prefecture: text(&row, "prefecture")?,
                mayor_title: text(&row, "mayor_title")?,
                mayor_name: text(&row, "mayor_name")?,
                minimum_age: small(&row, "minimum_age", "minimum age")?,
                tax_years_offered: small(&row, "tax_years_offered", "tax years offered")?,
            })
        })
        .transpose()
    }

    /// The resident `id`, in any status.
    pub async fn resident(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Option<Resident>, IssuerError> {
        let sql = format!("SELECT {RESIDENT_COLUMNS} FROM residents WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(resident_from_row).transpose()
    }

    /// The resident `id` (in any status) and everyone linked to their household, ordered as
    /// [`household_members`], in one query: every decision reads both.
    pub async fn resident_with_household(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Option<(Resident, Vec<Resident>)>, IssuerError> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM residents \
             WHERE household_id = (SELECT household_id FROM residents WHERE id = $1) \
             ORDER BY CASE WHEN relationship = '世帯主' THEN 0 ELSE 1 END, birth_date, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?;
        let household = rows
            .iter()
            .map(resident_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // The resident's own household row is among them (household_id is NOT NULL).
        Ok(household
            .iter()
            .find(|r| r.id == *id)
            .cloned()
            .map(|resident| (resident, household)))
    }

    /// Everyone linked to household `household_id` (in any status), head first, then by id.
    pub async fn household_members(
        conn: &mut AnyConnection,
        household_id: &str,
    ) -> Result<Vec<Resident>, IssuerError> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM residents WHERE household_id = $1 \
             ORDER BY CASE WHEN relationship = '世帯主' THEN 0 ELSE 1 END, birth_date, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(household_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(resident_from_row).collect()
    }

    /// The individual number of `id`.
    pub async fn individual_number(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Option<String>, IssuerError> {
        let row =
            sqlx::query("SELECT individual_number FROM individual_numbers WHERE resident_id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        row.map(|row| text(&row, "individual_number")).transpose()
    }

    /// The live (not 廃止 or 抹消) seal registration of `id`.
    pub async fn live_seal(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Option<SealRegistration>, IssuerError> {
        let row = sqlx::query(
            "SELECT s.registration_number, s.resident_id, s.registered_on, i.png \
             FROM seal_registrations s JOIN seal_images i ON i.sha256 = s.image_sha256 \
             WHERE s.resident_id = $1 AND s.status = 'active'",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(SealRegistration {
                registration_number: text(&row, "registration_number")?,
                resident_id: resident_ref(&row, "resident_id")?,
                registered_on: date(&row, "registered_on", "seal registered on")?,
                image_png: row.try_get::<Vec<u8>, _>("png")?,
            })
        })
        .transpose()
    }

    fn tax_from_row(row: &AnyRow) -> Result<TaxRecord, IssuerError> {
        Ok(TaxRecord {
            fiscal_year: small(row, "fiscal_year", "fiscal year")?,
            salary_income: int(row, "salary_income")?,
            total_income: int(row, "total_income")?,
            deductions: int(row, "deductions")?,
            taxable_income: int(row, "taxable_income")?,
            municipal_tax: int(row, "municipal_tax")?,
            prefectural_tax: int(row, "prefectural_tax")?,
            dependents: small(row, "dependents", "dependents")?,
        })
    }

    /// The tax record of `id` for `fiscal_year`.
    pub async fn tax_record(
        conn: &mut AnyConnection,
        id: &ResidentRef,
        fiscal_year: u32,
    ) -> Result<Option<TaxRecord>, IssuerError> {
        let row = sqlx::query(
            "SELECT fiscal_year, salary_income, total_income, deductions, taxable_income, \
             municipal_tax, prefectural_tax, dependents FROM tax_records \
             WHERE resident_id = $1 AND fiscal_year = $2",
        )
        .bind(id.as_str())
        .bind(i64::from(fiscal_year))
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(tax_from_row).transpose()
    }

    /// The fiscal years with a tax record for `id`, newest first.
    pub async fn tax_years(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Vec<u32>, IssuerError> {
        let rows = sqlx::query(
            "SELECT fiscal_year FROM tax_records WHERE resident_id = $1 ORDER BY fiscal_year DESC",
        )
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| small(row, "fiscal_year", "fiscal year"))
            .collect()
    }

    /// The 戸籍 `id`.
    pub async fn koseki(conn: &mut AnyConnection, id: &str) -> Result<Option<Koseki>, IssuerError> {
        let row = sqlx::query(
            "SELECT id, honseki, hittosha_name, created_on, status FROM koseki WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(Koseki {
                id: text(&row, "id")?,
                honseki: text(&row, "honseki")?,
                hittosha_name: text(&row, "hittosha_name")?,
                created_on: date(&row, "created_on", "koseki created on")?,
                current: text(&row, "status")? == "current",
            })
        })
        .transpose()
    }

    /// The members of 戸籍 `koseki_id` in order, with events and 附票 entries.
    pub async fn koseki_members(
        conn: &mut AnyConnection,
        koseki_id: &str,
    ) -> Result<Vec<KosekiMember>, IssuerError> {
        let mut members = koseki_members_without_details(conn, koseki_id).await?;
        koseki_member_details(conn, koseki_id, &mut members).await?;
        Ok(members)
    }

    /// The members of 戸籍 `koseki_id` without their 身分事項 and 附票 (`events` and `fuhyo`
    /// empty): what eligibility needs; only koseki certificates print the rest.
    pub async fn koseki_members_without_details(
        conn: &mut AnyConnection,
        koseki_id: &str,
    ) -> Result<Vec<KosekiMember>, IssuerError> {
        let rows = sqlx::query(
            "SELECT member_no, person_ref, family_name, given_name, birth_date, sex, \
             father_name, mother_name, parent_relationship, role, status \
             FROM koseki_members WHERE koseki_id = $1 ORDER BY member_no",
        )
        .bind(koseki_id)
        .fetch_all(&mut *conn)
        .await?;
        let members = rows
            .iter()
            .map(|row| {
                Ok(KosekiMember {
                    member_no: small(row, "member_no", "member number")?,
                    person_ref: resident_ref(row, "person_ref")?,
                    family_name: text(row, "family_name")?,
                    given_name: text(row, "given_name")?,
                    birth_date: date(row, "birth_date", "member birth date")?,
                    sex: Sex::parse(int(row, "sex")?)?,
                    father_name: opt_text(row, "father_name")?,
                    mother_name: opt_text(row, "mother_name")?,
                    parent_relationship: text(row, "parent_relationship")?,
                    role: text(row, "role")?,
                    present: text(row, "status")? == "in",
                    events: Vec::new(),
                    fuhyo: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, IssuerError>>()?;
        Ok(members)
    }

    /// Fills in the 身分事項 and 附票 of `members` (as read by
    /// [`koseki_members_without_details`] for 戸籍 `koseki_id`).
    pub async fn koseki_member_details(
        conn: &mut AnyConnection,
        koseki_id: &str,
        members: &mut [KosekiMember],
    ) -> Result<(), IssuerError> {
        let events = sqlx::query(
            "SELECT member_no, kind, event_date, place, detail FROM koseki_events \
             WHERE koseki_id = $1 ORDER BY member_no, seq",
        )
        .bind(koseki_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in &events {
            let no = small(row, "member_no", "member number")?;
            if let Some(member) = members.iter_mut().find(|m| m.member_no == no) {
                member.events.push(KosekiEvent {
                    kind: text(row, "kind")?,
                    date: date(row, "event_date", "event date")?,
                    place: opt_text(row, "place")?,
                    detail: opt_text(row, "detail")?,
                });
            }
        }
        let fuhyo = sqlx::query(
            "SELECT member_no, address, since FROM fuhyo_entries WHERE koseki_id = $1 \
             ORDER BY member_no, seq",
        )
        .bind(koseki_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in &fuhyo {
            let no = small(row, "member_no", "member number")?;
            if let Some(member) = members.iter_mut().find(|m| m.member_no == no) {
                member.fuhyo.push(FuhyoEntry {
                    address: text(row, "address")?,
                    since: date(row, "since", "fuhyo since")?,
                });
            }
        }
        Ok(())
    }

    fn pending_from_rows(rows: &[AnyRow]) -> Result<Vec<PendingChange>, IssuerError> {
        rows.iter()
            .map(|row| {
                Ok(PendingChange {
                    id: text(row, "id")?,
                    kind: text(row, "kind")?,
                })
            })
            .collect()
    }

    /// The changes not reflected yet that were filed for any of `ids` or for 戸籍 `koseki_id`,
    /// in one query: each as (resident, 戸籍, change). A decision reads them once rather than
    /// once per certificate type and person.
    pub async fn pending_for_people(
        conn: &mut AnyConnection,
        ids: &[&ResidentRef],
        koseki_id: Option<&str>,
    ) -> Result<Vec<(Option<String>, Option<String>, PendingChange)>, IssuerError> {
        if ids.is_empty() && koseki_id.is_none() {
            return Ok(Vec::new());
        }
        let mut conditions = Vec::new();
        if !ids.is_empty() {
            let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
            conditions.push(format!("resident_id IN ({})", placeholders.join(", ")));
        }
        if koseki_id.is_some() {
            conditions.push(format!("koseki_id = ${}", ids.len() + 1));
        }
        let sql = format!(
            "SELECT id, kind, resident_id, koseki_id FROM pending_changes \
             WHERE reflected_at IS NULL AND ({})",
            conditions.join(" OR ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.as_str());
        }
        if let Some(koseki_id) = koseki_id {
            query = query.bind(koseki_id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    opt_text(row, "resident_id")?,
                    opt_text(row, "koseki_id")?,
                    PendingChange {
                        id: text(row, "id")?,
                        kind: text(row, "kind")?,
                    },
                ))
            })
            .collect()
    }

    /// Changes filed for resident `id` and not reflected yet.
    pub async fn pending_for_resident(
        conn: &mut AnyConnection,
        id: &ResidentRef,
    ) -> Result<Vec<PendingChange>, IssuerError> {
        let rows = sqlx::query(
            "SELECT id, kind FROM pending_changes WHERE resident_id = $1 AND reflected_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        pending_from_rows(&rows)
    }

    /// 届出 filed for 戸籍 `koseki_id` and not reflected yet.
    pub async fn pending_for_koseki(
        conn: &mut AnyConnection,
        koseki_id: &str,
    ) -> Result<Vec<PendingChange>, IssuerError> {
        let rows = sqlx::query(
            "SELECT id, kind FROM pending_changes WHERE koseki_id = $1 AND reflected_at IS NULL",
        )
        .bind(koseki_id)
        .fetch_all(&mut *conn)
        .await?;
        pending_from_rows(&rows)
    }

    /// Every type's fee in force on `on` (per type, the row with the latest `effective_from`
    /// not after it), in one query: a menu prices seven types.
    pub async fn fees(
        conn: &mut AnyConnection,
        municipality: &str,
        on: Date,
    ) -> Result<Vec<(CertificateType, u32)>, IssuerError> {
        let rows = sqlx::query(
            "SELECT certificate_type, fee_yen FROM fee_schedule WHERE municipality_code = $1 \
             AND effective_from <= $2 ORDER BY certificate_type, effective_from DESC",
        )
        .bind(municipality)
        .bind(format_date(on))
        .fetch_all(&mut *conn)
        .await?;
        let mut fees: Vec<(CertificateType, u32)> = Vec::new();
        for row in &rows {
            let code = text(row, "certificate_type")?;
            // Unknown codes are rows of a newer schema; they price nothing here.
            let Some(ty) = CertificateType::from_code(&code) else {
                continue;
            };
            // Rows come newest first per type: the first one seen is in force.
            if !fees.iter().any(|(seen, _)| *seen == ty) {
                fees.push((ty, small(row, "fee_yen", "fee")?));
            }
        }
        Ok(fees)
    }

    /// The active support measures on any of `ids`, in one query. A person with several
    /// active rows gets the union of what they cover (the protective reading).
    pub async fn support_measures(
        conn: &mut AnyConnection,
        ids: &[&ResidentRef],
    ) -> Result<Vec<(ResidentRef, SupportMeasure)>, IssuerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT person_ref, covers_resident_record, covers_fuhyo FROM support_measures \
             WHERE active = 1 AND person_ref IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let mut measures: Vec<(ResidentRef, SupportMeasure)> = Vec::new();
        for row in &rows {
            let person = ResidentRef::parse(&text(row, "person_ref")?)?;
            let measure = SupportMeasure {
                covers_resident_record: flag(row, "covers_resident_record")?,
                covers_fuhyo: flag(row, "covers_fuhyo")?,
            };
            match measures.iter_mut().find(|(p, _)| *p == person) {
                Some((_, seen)) => {
                    seen.covers_resident_record |= measure.covers_resident_record;
                    seen.covers_fuhyo |= measure.covers_fuhyo;
                }
                None => measures.push((person, measure)),
            }
        }
        Ok(measures)
    }

    /// Every type's service window.
    pub async fn service_windows(
        conn: &mut AnyConnection,
        municipality: &str,
    ) -> Result<Vec<ServiceWindow>, IssuerError> {
        let rows = sqlx::query(
            "SELECT certificate_type, offered, weekdays_only, opens_at_minute, \
             closes_at_minute, max_copies FROM service_windows WHERE municipality_code = $1",
        )
        .bind(municipality)
        .fetch_all(&mut *conn)
        .await?;
        let mut windows = rows
            .iter()
            .map(|row| {
                Ok(ServiceWindow {
                    ty: CertificateType::from_code(&text(row, "certificate_type")?).ok_or(
                        IssuerError::Corrupt {
                            what: "certificate type",
                        },
                    )?,
                    offered: flag(row, "offered")?,
                    weekdays_only: flag(row, "weekdays_only")?,
                    opens_at_minute: small(row, "opens_at_minute", "opening")?,
                    closes_at_minute: small(row, "closes_at_minute", "closing")?,
                    max_copies: small(row, "max_copies", "max copies")?,
                })
            })
            .collect::<Result<Vec<_>, IssuerError>>()?;
        windows.sort_by_key(|window| window.ty);
        Ok(windows)
    }

    /// The configured closure on `on`, if any.
    pub async fn closed_date(
        conn: &mut AnyConnection,
        municipality: &str,
        on: Date,
    ) -> Result<Option<ClosedDate>, IssuerError> {
        let row = sqlx::query(
            "SELECT weekday_types_only FROM service_closed_dates \
             WHERE municipality_code = $1 AND closed_on = $2",
        )
        .bind(municipality)
        .bind(format_date(on))
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(ClosedDate {
                weekday_types_only: flag(&row, "weekday_types_only")?,
            })
        })
        .transpose()
    }

    /// Whether a maintenance window covers `at_ms`.
    pub async fn in_maintenance(
        conn: &mut AnyConnection,
        municipality: &str,
        at_ms: i64,
    ) -> Result<bool, IssuerError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM maintenance_windows WHERE municipality_code = $1 \
             AND starts_at <= $2 AND ends_at > $2",
        )
        .bind(municipality)
        .bind(at_ms)
        .fetch_one(&mut *conn)
        .await?;
        Ok(int(&row, "n")? > 0)
    }

    /// The municipality's kill switch, whether a maintenance window covers `at_ms`, and the
    /// configured closure on `on`, in one statement (three round trips folded into one; the
    /// same reads as [`service_switch`], [`in_maintenance`] and [`closed_date`]).
    pub async fn service_state(
        conn: &mut AnyConnection,
        municipality: &str,
        at_ms: i64,
        on: Date,
    ) -> Result<(ServiceSwitch, bool, Option<ClosedDate>), IssuerError> {
        let row = sqlx::query(
            "SELECT (SELECT suspended FROM service_switch WHERE municipality_code = $1) \
                 AS suspended, \
             (SELECT COUNT(*) FROM maintenance_windows WHERE municipality_code = $1 \
                 AND starts_at <= $2 AND ends_at > $2) AS maintenance, \
             (SELECT weekday_types_only FROM service_closed_dates \
                 WHERE municipality_code = $1 AND closed_on = $3) AS weekday_types_only",
        )
        .bind(municipality)
        .bind(at_ms)
        .bind(format_date(on))
        .fetch_one(&mut *conn)
        .await?;
        let suspended = row.try_get::<Option<i64>, _>("suspended")?.unwrap_or(0) != 0;
        let maintenance = row.try_get::<Option<i64>, _>("maintenance")?.unwrap_or(0) > 0;
        let closed = row
            .try_get::<Option<i64>, _>("weekday_types_only")?
            .map(|flag| ClosedDate {
                weekday_types_only: flag != 0,
            });
        Ok((ServiceSwitch { suspended }, maintenance, closed))
    }

    /// The kill switch.
    pub async fn service_switch(
        conn: &mut AnyConnection,
        municipality: &str,
    ) -> Result<ServiceSwitch, IssuerError> {
        let row = sqlx::query("SELECT suspended FROM service_switch WHERE municipality_code = $1")
            .bind(municipality)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(ServiceSwitch {
            suspended: match row {
                Some(row) => flag(&row, "suspended")?,
                None => false,
            },
        })
    }
}

/// Changes to the register and the configuration (the operator's side, and what tests use
/// to change the register a moment before a request).
pub mod write {
    use super::*;

    /// Inserts or replaces a municipality.
    pub async fn upsert_municipality(
        conn: &mut AnyConnection,
        m: &Municipality,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO municipalities (code, name, prefecture, mayor_title, mayor_name, \
             minimum_age, tax_years_offered) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
             prefecture = excluded.prefecture, mayor_title = excluded.mayor_title, \
             mayor_name = excluded.mayor_name, minimum_age = excluded.minimum_age, \
             tax_years_offered = excluded.tax_years_offered",
        )
        .bind(&m.code)
        .bind(&m.name)
        .bind(&m.prefecture)
        .bind(&m.mayor_title)
        .bind(&m.mayor_name)
        .bind(i64::from(m.minimum_age))
        .bind(i64::from(m.tax_years_offered))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Adds (or replaces) the fee of `ty` from `effective_from` on.
    pub async fn set_fee(
        conn: &mut AnyConnection,
        municipality: &str,
        ty: CertificateType,
        effective_from: Date,
        fee_yen: u32,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO fee_schedule (municipality_code, certificate_type, effective_from, \
             fee_yen) VALUES ($1, $2, $3, $4) ON CONFLICT (municipality_code, certificate_type, \
             effective_from) DO UPDATE SET fee_yen = excluded.fee_yen",
        )
        .bind(municipality)
        .bind(ty.code())
        .bind(format_date(effective_from))
        .bind(i64::from(fee_yen))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Sets a type's service window.
    pub async fn set_service_window(
        conn: &mut AnyConnection,
        municipality: &str,
        w: &ServiceWindow,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO service_windows (municipality_code, certificate_type, offered, \
             weekdays_only, opens_at_minute, closes_at_minute, max_copies) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (municipality_code, certificate_type) DO UPDATE SET \
             offered = excluded.offered, weekdays_only = excluded.weekdays_only, \
             opens_at_minute = excluded.opens_at_minute, \
             closes_at_minute = excluded.closes_at_minute, max_copies = excluded.max_copies",
        )
        .bind(municipality)
        .bind(w.ty.code())
        .bind(i64::from(w.offered))
        .bind(i64::from(w.weekdays_only))
        .bind(i64::from(w.opens_at_minute))
        .bind(i64::from(w.closes_at_minute))
        .bind(i64::from(w.max_copies))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Adds a closed day.
    pub async fn add_closed_date(
        conn: &mut AnyConnection,
        municipality: &str,
        on: Date,
        weekday_types_only: bool,
        note: &str,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO service_closed_dates (municipality_code, closed_on, \
             weekday_types_only, note) VALUES ($1, $2, $3, $4)",
        )
        .bind(municipality)
        .bind(format_date(on))
        .bind(i64::from(weekday_types_only))
        .bind(note)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Adds a maintenance window `[starts_at_ms, ends_at_ms)`.
    pub async fn add_maintenance(
        conn: &mut AnyConnection,
        municipality: &str,
        id: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
        note: &str,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO maintenance_windows (id, municipality_code, starts_at, ends_at, note) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(municipality)
        .bind(starts_at_ms)
        .bind(ends_at_ms)
        .bind(note)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Throws or resets the kill switch.
    pub async fn set_suspended(
        conn: &mut AnyConnection,
        municipality: &str,
        suspended: bool,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO service_switch (municipality_code, suspended, reason, changed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (municipality_code) DO UPDATE SET \
             suspended = excluded.suspended, reason = excluded.reason, \
             changed_at = excluded.changed_at",
        )
        .bind(municipality)
        .bind(i64::from(suspended))
        .bind(reason)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Abolishes (廃止) the live seal registration of `id`. Returns whether one was live.
    pub async fn abolish_seal(
        conn: &mut AnyConnection,
        id: &ResidentRef,
        at_ms: i64,
    ) -> Result<bool, IssuerError> {
        let done = sqlx::query(
            "UPDATE seal_registrations SET status = 'abolished', status_changed_at = $2 \
             WHERE resident_id = $1 AND status = 'active'",
        )
        .bind(id.as_str())
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a move within the municipality (転居) of `id`'s whole household: the new
    /// address, the old one as 前住所.
    pub async fn change_household_address(
        conn: &mut AnyConnection,
        id: &ResidentRef,
        new_address: &str,
        since: Date,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        let household = sqlx::query("SELECT household_id FROM residents WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(IssuerError::Refused(crate::rules::Reason::ResidentNotFound))?;
        let household = text(&household, "household_id")?;
        sqlx::query(
            "UPDATE residents SET previous_address = address, address = $2, \
             address_since = $3, updated_at = $4 WHERE household_id = $1",
        )
        .bind(&household)
        .bind(new_address)
        .bind(format_date(since))
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE households SET address = $2 WHERE id = $1")
            .bind(&household)
            .bind(new_address)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Sets (or replaces) a support measure on `id`.
    pub async fn set_support_measure(
        conn: &mut AnyConnection,
        id: &ResidentRef,
        measure: SupportMeasure,
        since: Date,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO support_measures (person_ref, since, covers_resident_record, \
             covers_fuhyo, active, updated_at) VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (person_ref) DO UPDATE SET since = excluded.since, \
             covers_resident_record = excluded.covers_resident_record, \
             covers_fuhyo = excluded.covers_fuhyo, active = 1, updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(format_date(since))
        .bind(i64::from(measure.covers_resident_record))
        .bind(i64::from(measure.covers_fuhyo))
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Sets a resident's status (転出届, 転出, 死亡).
    pub async fn set_status(
        conn: &mut AnyConnection,
        id: &ResidentRef,
        status: ResidentStatus,
        on: Date,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "UPDATE residents SET status = $2, status_date = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(status.code())
        .bind(format_date(on))
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Files a change for a resident or a 戸籍 that is not reflected yet.
    pub async fn file_pending_change(
        conn: &mut AnyConnection,
        id: &str,
        resident: Option<&ResidentRef>,
        koseki_id: Option<&str>,
        kind: &str,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        sqlx::query(
            "INSERT INTO pending_changes (id, resident_id, koseki_id, kind, filed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(resident.map(ResidentRef::as_str))
        .bind(koseki_id)
        .bind(kind)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks a pending change as reflected.
    pub async fn reflect_pending_change(
        conn: &mut AnyConnection,
        id: &str,
        at_ms: i64,
    ) -> Result<(), IssuerError> {
        sqlx::query("UPDATE pending_changes SET reflected_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
