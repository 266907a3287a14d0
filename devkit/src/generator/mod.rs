//! The deterministic synthetic register: residents with Japanese names and kana, addresses
//! (町丁目・番地), households, seals with generated impressions, three fiscal years of tax,
//! 戸籍 with events and 附票, foreign residents, and every blocking case of the rules.
//!
//! The same seed, count, municipality and `as_of` date give the same register, byte for byte
//! (the random source is our own SplitMix64, so no dependency upgrade changes the data). The
//! first households are one of each [`Case`], so even a tiny register has every blocking case;
//! later households get the cases at low rates among ordinary ones.
//!
//! Speed: rows are collected per batch of households and written with multi-row INSERTs
//! (up to 32,000 bound parameters each; the statement text is reused so it stays prepared)
//! in one transaction per batch.

pub mod names;
pub mod seal;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use kiosk_document::{CertificateType, MunicipalityCode, ResidentRef};
use sqlx::AnyConnection;
use time::{Date, Duration as Days};

use issuer::bindings::CardBinding;
use issuer::calendar::{format_date, newest_tax_fiscal_year};
use issuer::error::IssuerError;
use issuer::register::{Municipality, Register, ServiceWindow, write};

/// The blocking and special cases the generator plants. `examples` in the report lists, per
/// case, residents to use as the requester that meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Case {
    /// A married couple with children, 本籍 here, seals and tax: everything is issuable.
    Family,
    /// The requester is under a support measure.
    SupportMeasure,
    /// The requester's spouse is under a support measure (住民票 of the household refused).
    SupportMeasureInHousehold,
    /// A member of the requester's 戸籍 living elsewhere has a measure flagged only in the
    /// 住民票 system (the Kyoto case): the 附票 must still be refused.
    FuhyoMeasureOnKin,
    /// An adult child of the requester's household has moved out.
    MovedOutInHousehold,
    /// The requester has filed a 転出届.
    MoveOutFiled,
    /// The requester's mother, in the household, has died; the example is the deceased.
    Deceased,
    /// The requester's seal registration was abolished.
    SealAbolished,
    /// An adult without a seal registration.
    NoSeal,
    /// A child aged 10 to 14 who holds a card.
    UnderMinimumAge,
    /// A change (転居届) is filed for the requester and not reflected.
    PendingChange,
    /// A 戸籍届出 is pending on the requester's 戸籍.
    KosekiPending,
    /// An adult with no tax record (no declaration).
    NoTaxData,
    /// A foreign resident.
    Foreign,
    /// A married woman with a registered 旧氏.
    FormerSurname,
    /// 本籍 in another municipality: no 戸籍 kept here.
    HonsekiElsewhere,
}

impl Case {
    /// Every case, in the order of the first households.
    pub const ALL: [Case; 16] = [
        Case::Family,
        Case::SupportMeasure,
        Case::SupportMeasureInHousehold,
        Case::FuhyoMeasureOnKin,
        Case::MovedOutInHousehold,
        Case::MoveOutFiled,
        Case::Deceased,
        Case::SealAbolished,
        Case::NoSeal,
        Case::UnderMinimumAge,
        Case::PendingChange,
        Case::KosekiPending,
        Case::NoTaxData,
        Case::Foreign,
        Case::FormerSurname,
        Case::HonsekiElsewhere,
    ];
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// The seed.
    pub seed: u64,
    /// How many residents.
    pub residents: u64,
    /// The municipality (its code must carry a valid JIS X 0402 check digit).
    pub municipality: Municipality,
    /// The register's "today": ages, dates and tax years are relative to it.
    pub as_of: Date,
    /// The card CA's key identifier (the authorityKeyIdentifier of the card certificates,
    /// lowercase hex), the first half of the gateway's binding key.
    pub card_issuer_key_id: String,
    /// Residents per write transaction.
    pub batch_residents: usize,
}

impl GeneratorConfig {
    /// A configuration with a typical municipality named `name` under `code`.
    pub fn new(seed: u64, residents: u64, code: &str, name: &str, as_of: Date) -> Self {
        GeneratorConfig {
            seed,
            residents,
            municipality: Municipality {
                code: code.to_owned(),
                name: name.to_owned(),
                prefecture: "東京都".to_owned(),
                mayor_title: format!("{name}長"),
                mayor_name: "見本　太郎".to_owned(),
                minimum_age: 15,
                tax_years_offered: 3,
            },
            as_of,
            card_issuer_key_id: issuer::bindings::DEFAULT_ISSUER_KEY_ID.to_owned(),
            batch_residents: 20_000,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct GenerationReport {
    /// Residents written.
    pub residents: u64,
    /// Households written.
    pub households: u64,
    /// 戸籍 written.
    pub koseki: u64,
    /// Seal registrations written.
    pub seals: u64,
    /// Tax records written.
    pub tax_records: u64,
    /// Card bindings written.
    pub bindings: u64,
    /// All rows written, every table.
    pub rows: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Up to five requesters per case.
    pub examples: BTreeMap<Case, Vec<ResidentRef>>,
}

impl GenerationReport {
    /// Residents per second.
    pub fn residents_per_second(&self) -> f64 {
        self.residents as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The first example of `case`.
    pub fn example(&self, case: Case) -> Option<&ResidentRef> {
        self.examples.get(&case).and_then(|v| v.first())
    }
}

/// SplitMix64: tiny, fast, and fixed forever, so a seed always means the same register.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: bias below 2^-32 for the small ranges used here.
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A value bound into a multi-row INSERT.
#[derive(Debug, Clone)]
enum Val {
    I(i64),
    T(String),
    /// A NULL text; PostgreSQL types a bound NULL, so integers need [`Val::NI`].
    N,
    /// A NULL integer.
    NI,
    B(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::I(i64::from(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::T(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::T(v)
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        v.map_or(Val::N, Val::T)
    }
}
impl From<Date> for Val {
    fn from(v: Date) -> Val {
        Val::T(format_date(v))
    }
}
impl From<Option<Date>> for Val {
    fn from(v: Option<Date>) -> Val {
        v.map_or(Val::N, |d| Val::T(format_date(d)))
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::B(v)
    }
}

/// Rows for one table, written with multi-row INSERTs.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    values: Vec<Val>,
    sql_cache: HashMap<usize, String>,
}

/// Bound parameters per statement on PostgreSQL (its limit is 65,535).
const MAX_PARAMS_POSTGRES: usize = 32_000;
/// Bound parameters per statement on SQLite (its limit is 32,766).
///
/// SQLite statements use anonymous `?` placeholders, the one place in the crate that does:
/// sqlx looks every parameter up with `sqlite3_bind_parameter_name`, which for numbered
/// `$N` names walks the statement's whole parameter list, so binding is quadratic in the
/// parameter count (measured: 96% of the generator's time at 32,000 `$N` per statement, 49%
/// at 960). Anonymous parameters have no names to walk.
const MAX_PARAMS_SQLITE: usize = 32_000;

impl Table {
    fn new(name: &'static str, columns: &'static [&'static str]) -> Table {
        Table {
            name,
            columns,
            values: Vec::new(),
            sql_cache: HashMap::new(),
        }
    }

    fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.values.extend(row);
    }

    fn sql(&mut self, rows: usize, anonymous: bool) -> String {
        let (name, columns) = (self.name, self.columns);
        self.sql_cache
            .entry(rows)
            .or_insert_with(|| {
                let width = columns.len();
                let mut sql = format!("INSERT INTO {name} ({}) VALUES ", columns.join(", "));
                for r in 0..rows {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 0..width {
                        if c > 0 {
                            sql.push_str(", ");
                        }
                        if anonymous {
                            sql.push('?');
                        } else {
                            sql.push_str(&format!("${}", r * width + c + 1));
                        }
                    }
                    sql.push(')');
                }
                sql
            })
            .clone()
    }

    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        max_params: usize,
        anonymous: bool,
    ) -> Result<u64, IssuerError> {
        let width = self.columns.len();
        let per_statement = (max_params / width).max(1) * width;
        let mut values = std::mem::take(&mut self.values).into_iter();
        let total = values.len() / width;
        loop {
            // Values move into the statement: no copy of the batch's strings and images.
            let chunk: Vec<Val> = values.by_ref().take(per_statement).collect();
            if chunk.is_empty() {
                break;
            }
            let sql = self.sql(chunk.len() / width, anonymous);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in chunk {
                query = match v {
                    Val::I(i) => query.bind(i),
                    Val::T(t) => query.bind(t),
                    Val::N => query.bind(None::<String>),
                    Val::NI => query.bind(None::<i64>),
                    Val::B(b) => query.bind(b),
                };
            }
            query.execute(&mut *conn).await?;
        }
        Ok(total as u64)
    }
}

struct Tables {
    households: Table,
    residents: Table,
    numbers: Table,
    seal_images: Table,
    seals: Table,
    tax: Table,
    koseki: Table,
    members: Table,
    events: Table,
    fuhyo: Table,
    measures: Table,
    pending: Table,
}

impl Tables {
    fn new() -> Tables {
        Tables {
            households: Table::new(
                "households",
                &["id", "municipality_code", "head_resident_id", "address"],
            ),
            residents: Table::new(
                "residents",
                &[
                    "id",
                    "municipality_code",
                    "household_id",
                    "family_name",
                    "given_name",
                    "family_name_kana",
                    "given_name_kana",
                    "former_surname",
                    "former_surname_kana",
                    "birth_date",
                    "sex",
                    "relationship",
                    "address",
                    "resident_since",
                    "address_since",
                    "previous_address",
                    "honseki",
                    "hittosha",
                    "koseki_id",
                    "status",
                    "status_date",
                    "nationality",
                    "residence_status",
                    "period_of_stay_until",
                    "residence_card_number",
                    "updated_at",
                ],
            ),
            numbers: Table::new("individual_numbers", &["resident_id", "individual_number"]),
            seal_images: Table::new("seal_images", &["sha256", "png"]),
            seals: Table::new(
                "seal_registrations",
                &[
                    "registration_number",
                    "resident_id",
                    "registered_on",
                    "status",
                    "status_changed_at",
                    "image_sha256",
                ],
            ),
            tax: Table::new(
                "tax_records",
                &[
                    "resident_id",
                    "fiscal_year",
                    "salary_income",
                    "total_income",
                    "deductions",
                    "taxable_income",
                    "municipal_tax",
                    "prefectural_tax",
                    "dependents",
                ],
            ),
            koseki: Table::new(
                "koseki",
                &[
                    "id",
                    "municipality_code",
                    "honseki",
                    "hittosha_name",
                    "created_on",
                    "status",
                ],
            ),
            members: Table::new(
                "koseki_members",
                &[
                    "koseki_id",
                    "member_no",
                    "person_ref",
                    "family_name",
                    "given_name",
                    "birth_date",
                    "sex",
                    "father_name",
                    "mother_name",
                    "parent_relationship",
                    "role",
                    "status",
                ],
            ),
            events: Table::new(
                "koseki_events",
                &[
                    "koseki_id",
                    "member_no",
                    "seq",
                    "kind",
                    "event_date",
                    "place",
                    "detail",
                ],
            ),
            fuhyo: Table::new(
                "fuhyo_entries",
                &["koseki_id", "member_no", "seq", "address", "since"],
            ),
            measures: Table::new(
                "support_measures",
                &[
                    "person_ref",
                    "since",
                    "covers_resident_record",
                    "covers_fuhyo",
                    "active",
                    "updated_at",
                ],
            ),
            pending: Table::new(
                "pending_changes",
                &[
                    "id",
                    "resident_id",
                    "koseki_id",
                    "kind",
                    "filed_at",
                    "reflected_at",
                ],
            ),
        }
    }

    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        max_params: usize,
        anonymous: bool,
    ) -> Result<u64, IssuerError> {
        let mut rows = 0;
        // Parents before children, so foreign keys hold at every statement.
        rows += self.households.flush(conn, max_params, anonymous).await?;
        rows += self.residents.flush(conn, max_params, anonymous).await?;
        rows += self.numbers.flush(conn, max_params, anonymous).await?;
        rows += self.seal_images.flush(conn, max_params, anonymous).await?;
        rows += self.seals.flush(conn, max_params, anonymous).await?;
        rows += self.tax.flush(conn, max_params, anonymous).await?;
        rows += self.koseki.flush(conn, max_params, anonymous).await?;
        rows += self.members.flush(conn, max_params, anonymous).await?;
        rows += self.events.flush(conn, max_params, anonymous).await?;
        rows += self.fuhyo.flush(conn, max_params, anonymous).await?;
        rows += self.measures.flush(conn, max_params, anonymous).await?;
        rows += self.pending.flush(conn, max_params, anonymous).await?;
        Ok(rows)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    MoveOutFiled,
    MovedOut,
    Deceased,
}

impl Status {
    fn code(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::MoveOutFiled => "move_out_filed",
            Status::MovedOut => "moved_out",
            Status::Deceased => "deceased",
        }
    }
}

/// One generated person before it becomes rows.
struct Person {
    id: String,
    family: String,
    given: String,
    family_kana: String,
    given_kana: String,
    former: Option<(String, String)>,
    birth: Date,
    male: bool,
    relationship: &'static str,
    foreign: bool,
    status: Status,
    status_date: Option<Date>,
    resident_since: Date,
    koseki_role: Option<&'static str>,
    parent_relationship: String,
    father: Option<String>,
    mother: Option<String>,
}

impl Person {
    fn full(&self) -> String {
        format!("{}\u{3000}{}", self.family, self.given)
    }

    fn age(&self, on: Date) -> i32 {
        issuer::calendar::age_on(self.birth, on) as i32
    }
}

struct Generator<'a> {
    cfg: &'a GeneratorConfig,
    rng: Rng,
    tables: Tables,
    report: GenerationReport,
    seal_hashes: HashMap<String, String>,
    number_counter: u64,
    seal_counter: u64,
    card_counter: u64,
    now_ms: i64,
    bindings: Vec<CardBinding>,
}

fn date_between(rng: &mut Rng, from: Date, to: Date) -> Date {
    let (a, b) = (from.to_julian_day(), to.to_julian_day());
    if b <= a {
        return from;
    }
    Date::from_julian_day(a + rng.below((b - a) as u64) as i32).unwrap_or(from)
}

fn years_before(date: Date, years: i32) -> Date {
    date.replace_year(date.year() - years)
        .or_else(|_| Date::from_calendar_date(date.year() - years, date.month(), 28))
        .unwrap_or(date)
}

/// 12-digit 個人番号 with its check digit (番号法施行令 第8条).
fn individual_number(body: u64) -> String {
    let digits = format!("{:011}", body % 100_000_000_000);
    let mut sum = 0u32;
    for (n, c) in digits.chars().rev().enumerate() {
        let p = c.to_digit(10).unwrap_or(0);
        let n = n as u32 + 1;
        let q = if n <= 6 { n + 1 } else { n - 5 };
        sum += p * q;
    }
    let rem = sum % 11;
    let check = if rem <= 1 { 0 } else { 11 - rem };
    format!("{digits}{check}")
}

const KANJI_NUMBERS: [&str; 10] = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];

impl<'a> Generator<'a> {
    fn id(&mut self, prefix: &str) -> String {
        format!(
            "{prefix}{:016x}{:04x}",
            self.rng.next_u64(),
            self.rng.below(1 << 16)
        )
    }

    fn address(&mut self) -> String {
        let m = &self.cfg.municipality;
        let (town, chome) = *self.rng.pick(names::TOWNS);
        let chome = KANJI_NUMBERS[self.rng.below(u64::from(chome)) as usize];
        let ban = self.rng.below(30) + 1;
        let go = self.rng.below(25) + 1;
        let base = format!("{}{}{town}{chome}丁目{ban}番{go}号", m.prefecture, m.name);
        if self.rng.chance(0.4) {
            let building = *self.rng.pick(names::BUILDINGS);
            let room = (self.rng.below(12) + 1) * 100 + self.rng.below(10) + 1;
            format!(
                "{base}　{building}{}{room}号室",
                KANJI_NUMBERS[self.rng.below(5) as usize]
            )
        } else {
            base
        }
    }

    fn person(&mut self, family: (&str, &str), male: bool, birth: Date) -> Person {
        let (given, given_kana) = if male {
            *self.rng.pick(names::MALE_NAMES)
        } else {
            *self.rng.pick(names::FEMALE_NAMES)
        };
        let as_of = self.cfg.as_of;
        let adult_from = years_before(as_of, 0).min(birth.saturating_add(Days::days(18 * 365)));
        let resident_since = if self.rng.chance(0.5) {
            birth
        } else {
            date_between(
                &mut self.rng,
                adult_from,
                as_of.saturating_sub(Days::days(30)),
            )
            .max(birth)
        };
        Person {
            id: self.id("r"),
            family: family.0.to_owned(),
            given: given.to_owned(),
            family_kana: family.1.to_owned(),
            given_kana: given_kana.to_owned(),
            former: None,
            birth,
            male,
            relationship: "世帯主",
            foreign: false,
            status: Status::Active,
            status_date: None,
            resident_since,
            koseki_role: None,
            parent_relationship: String::new(),
            father: None,
            mother: None,
        }
    }

    fn seal_hash(&mut self, surname: &str) -> Result<String, IssuerError> {
        if let Some(hash) = self.seal_hashes.get(surname) {
            return Ok(hash.clone());
        }
        let png = seal::seal_png(surname)?;
        let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &png));
        self.tables
            .seal_images
            .push(vec![hash.clone().into(), png.into()]);
        self.seal_hashes.insert(surname.to_owned(), hash.clone());
        Ok(hash)
    }

    fn example(&mut self, case: Case, id: &str) {
        let list = self.report.examples.entry(case).or_default();
        if list.len() < 5
            && let Ok(r) = ResidentRef::parse(id)
        {
            list.push(r);
        }
    }

    fn tax_rows(&mut self, p: &Person, dependents: u32) {
        let age = p.age(self.cfg.as_of);
        let base_salary: i64 = if age >= 65 {
            0
        } else {
            2_000_000 + self.rng.below(7_000_000) as i64
        };
        let pension: i64 = if age >= 65 {
            1_200_000 + self.rng.below(1_500_000) as i64
        } else {
            0
        };
        let newest = newest_tax_fiscal_year(self.cfg.as_of);
        for back in 0..3u32 {
            let year = newest - back;
            let factor = 100 - i64::from(back) * 3 + self.rng.below(6) as i64;
            let salary = base_salary * factor / 100 / 1000 * 1000;
            let salary_income_after = (salary - (salary * 20 / 100 + 440_000).max(550_000)).max(0);
            let total = salary_income_after + (pension - 1_100_000).max(0);
            let deductions = 430_000 + salary * 15 / 100 + i64::from(dependents) * 380_000;
            let taxable = ((total - deductions).max(0)) / 1000 * 1000;
            let (municipal, prefectural) = if taxable > 0 {
                (taxable * 6 / 100 + 3_500, taxable * 4 / 100 + 1_500)
            } else {
                (0, 0)
            };
            self.tables.tax.push(vec![
                p.id.clone().into(),
                year.into(),
                salary.into(),
                total.into(),
                deductions.into(),
                taxable.into(),
                municipal.into(),
                prefectural.into(),
                dependents.into(),
            ]);
            self.report.tax_records += 1;
        }
    }

    /// Writes one household: its residents and everything attached to them.
    #[allow(clippy::too_many_lines)]
    fn household(&mut self, case: Option<Case>, budget: u64) -> Result<u64, IssuerError> {
        let as_of = self.cfg.as_of;
        let code = self.cfg.municipality.code.clone();
        let household_id = self.id("h");
        let address = self.address();
        let foreign = case == Some(Case::Foreign) || (case.is_none() && self.rng.chance(0.03));
        let honseki_here = !foreign
            && case != Some(Case::HonsekiElsewhere)
            && (case.is_some() || self.rng.chance(0.8));
        let family = *self.rng.pick(names::SURNAMES);

        // Household shape.
        let forced_family = matches!(
            case,
            Some(
                Case::Family
                    | Case::SupportMeasureInHousehold
                    | Case::MovedOutInHousehold
                    | Case::Deceased
                    | Case::UnderMinimumAge
                    | Case::FormerSurname
                    | Case::KosekiPending
                    | Case::MoveOutFiled
            )
        );
        let roll = self.rng.below(100);
        let (couple, children, grandmother) = if forced_family {
            (true, 1 + self.rng.below(3), case == Some(Case::Deceased))
        } else if case.is_some() || roll < 32 {
            (false, 0, false)
        } else if roll < 57 {
            (true, 0, false)
        } else if roll < 87 {
            (true, 1 + self.rng.below(3), false)
        } else if roll < 93 {
            (false, 1 + self.rng.below(2), false)
        } else {
            (true, 1 + self.rng.below(2), true)
        };

        let mut people: Vec<Person> = Vec::new();
        let head_age = if children > 0 || case == Some(Case::UnderMinimumAge) {
            38 + self.rng.below(15) as i32
        } else {
            22 + self.rng.below(60) as i32
        };
        let head_birth = date_between(
            &mut self.rng,
            years_before(as_of, head_age + 1),
            years_before(as_of, head_age),
        );
        let head_male = couple || self.rng.chance(0.5);
        let mut head = self.person(family, head_male, head_birth);
        if foreign {
            let f = *self.rng.pick(names::FOREIGN);
            head.family = f.3.to_owned();
            head.given = f.4.to_owned();
            head.family_kana = f.1.to_owned();
            head.given_kana = f.2.to_owned();
            head.foreign = true;
        }
        people.push(head);
        if couple {
            let spouse_birth = date_between(
                &mut self.rng,
                years_before(head_birth, -6),
                years_before(head_birth, 4).max(head_birth),
            );
            let spouse_birth = spouse_birth.min(years_before(as_of, 20));
            let mut spouse = self.person(family, !head_male, spouse_birth);
            spouse.relationship = if head_male { "妻" } else { "夫" };
            spouse.resident_since = people[0].resident_since;
            if foreign {
                spouse.family = people[0].family.clone();
                spouse.family_kana = people[0].family_kana.clone();
                spouse.foreign = true;
                let f = *self.rng.pick(names::FOREIGN);
                spouse.given = f.4.to_owned();
                spouse.given_kana = f.2.to_owned();
            } else if case == Some(Case::FormerSurname) || self.rng.chance(0.1) {
                let maiden = *self.rng.pick(names::SURNAMES);
                if maiden.0 != family.0 {
                    spouse.former = Some((maiden.0.to_owned(), maiden.1.to_owned()));
                }
            }
            people.push(spouse);
        }
        let mother_age = people.iter().map(|p| p.age(as_of)).min().unwrap_or(30);
        let mut sons = 0;
        let mut daughters = 0;
        for i in 0..children {
            let max_age = (mother_age - 22).max(0);
            let age = if case == Some(Case::UnderMinimumAge) && i == 0 {
                10 + self.rng.below(5) as i32
            } else if case == Some(Case::MovedOutInHousehold) && i == 0 {
                19 + self.rng.below(3) as i32
            } else {
                self.rng.below(max_age as u64 + 1) as i32
            };
            let birth = date_between(
                &mut self.rng,
                years_before(as_of, age + 1).saturating_add(Days::days(1)),
                years_before(as_of, age),
            );
            let male = self.rng.chance(0.5);
            let mut child = self.person(family, male, birth);
            child.relationship = "子";
            child.resident_since = birth.max(people[0].resident_since);
            if male {
                sons += 1;
            } else {
                daughters += 1;
            }
            let order = if male { sons } else { daughters };
            child.parent_relationship = match (male, order) {
                (true, 1) => "長男".into(),
                (false, 1) => "長女".into(),
                (true, n) => format!("{}男", KANJI_NUMBERS[(n as usize - 1).min(9)]),
                (false, n) => format!("{}女", KANJI_NUMBERS[(n as usize - 1).min(9)]),
            };
            if foreign {
                child.family = people[0].family.clone();
                child.family_kana = people[0].family_kana.clone();
                child.foreign = true;
            }
            people.push(child);
        }
        if grandmother {
            let age = people[0].age(as_of) + 26 + self.rng.below(8) as i32;
            let birth = date_between(
                &mut self.rng,
                years_before(as_of, age + 1),
                years_before(as_of, age),
            );
            let mut gm = self.person(family, false, birth);
            gm.relationship = "母";
            if case == Some(Case::Deceased) {
                gm.status = Status::Deceased;
                gm.status_date = Some(as_of.saturating_sub(Days::days(20)));
            }
            people.push(gm);
        }
        people.truncate(budget.max(1) as usize);
        // The last household may be cut short by the resident count.
        let couple = couple && people.len() > 1;

        // Statuses of the household's cases.
        match case {
            Some(Case::MovedOutInHousehold) if people.len() > 2 => {
                people[2].status = Status::MovedOut;
                people[2].status_date = Some(as_of.saturating_sub(Days::days(10)));
            }
            Some(Case::MoveOutFiled) => {
                people[0].status = Status::MoveOutFiled;
                people[0].status_date = Some(as_of.saturating_sub(Days::days(3)));
            }
            _ => {}
        }

        // 戸籍: the couple's own 戸籍 with their children, or a single person in their
        // parents' 戸籍 whose parents live elsewhere.
        let koseki_id = honseki_here.then(|| self.id("k"));
        let honseki = if honseki_here {
            let (town, _) = *self.rng.pick(names::TOWNS);
            format!(
                "{}{}{town}{}番地",
                self.cfg.municipality.prefecture,
                self.cfg.municipality.name,
                self.rng.below(40) + 1
            )
        } else {
            (*self.rng.pick(names::ELSEWHERE)).to_owned()
        };
        let koseki_head = if couple {
            if people[0].male { 0 } else { 1 }
        } else {
            0
        };
        let hittosha_name = people
            .get(koseki_head)
            .map(Person::full)
            .unwrap_or_default();
        let previous_address = self
            .rng
            .chance(0.5)
            .then(|| (*self.rng.pick(names::ELSEWHERE)).to_owned());
        let address_since = date_between(
            &mut self.rng,
            people[0].resident_since,
            as_of.saturating_sub(Days::days(7)),
        );

        if let Some(kid) = &koseki_id {
            let mut member_no = 0u32;
            let koseki_created;
            let mut koseki_hittosha = hittosha_name.clone();
            if couple {
                let (h, w) = if people[0].male { (0, 1) } else { (1, 0) };
                let marriage = date_between(
                    &mut self.rng,
                    people[h]
                        .birth
                        .max(people[w].birth)
                        .saturating_add(Days::days(365 * 20)),
                    people
                        .iter()
                        .filter(|p| p.relationship == "子")
                        .map(|p| p.birth)
                        .min()
                        .unwrap_or(as_of)
                        .min(as_of),
                );
                koseki_created = marriage;
                for (idx, role) in [(h, "筆頭者"), (w, "妻")] {
                    let p = &mut people[idx];
                    p.koseki_role = Some(role);
                    let father = format!(
                        "{}\u{3000}{}",
                        p.former
                            .as_ref()
                            .map_or(p.family.as_str(), |f| f.0.as_str()),
                        self.rng.pick(names::MALE_NAMES).0
                    );
                    let mother = self.rng.pick(names::FEMALE_NAMES).0.to_owned();
                    p.father = Some(father);
                    p.mother = Some(mother);
                    p.parent_relationship = if p.male {
                        "長男".into()
                    } else {
                        "長女".into()
                    };
                }
                let husband = people[h].full();
                let wife = people[w].full();
                for p in people.iter_mut().filter(|p| p.relationship == "子") {
                    p.koseki_role = Some("子");
                    p.father = Some(husband.clone());
                    p.mother = Some(wife.split('\u{3000}').nth(1).unwrap_or_default().to_owned());
                }
            } else {
                // Parents living elsewhere are members 1 and 2; the person is their child.
                let father_given = self.rng.pick(names::MALE_NAMES).0;
                let mother_given = self.rng.pick(names::FEMALE_NAMES).0;
                let p0_birth = people[0].birth;
                let father_birth = years_before(p0_birth, 28 + self.rng.below(6) as i32);
                let mother_birth = years_before(p0_birth, 26 + self.rng.below(6) as i32);
                koseki_created = years_before(p0_birth, 1);
                let father_name = format!("{}\u{3000}{father_given}", family.0);
                koseki_hittosha = father_name.clone();
                for (given, birth, male, role) in [
                    (father_given, father_birth, true, "筆頭者"),
                    (mother_given, mother_birth, false, "妻"),
                ] {
                    member_no += 1;
                    let person_ref = self.id("p");
                    self.tables.members.push(vec![
                        kid.clone().into(),
                        member_no.into(),
                        person_ref.clone().into(),
                        family.0.into(),
                        given.into(),
                        birth.into(),
                        if male { 1i64 } else { 2 }.into(),
                        Val::N,
                        Val::N,
                        if male { "長男" } else { "長女" }.into(),
                        role.into(),
                        "in".into(),
                    ]);
                    let place = *self.rng.pick(names::BIRTHPLACES);
                    self.tables.events.push(vec![
                        kid.clone().into(),
                        member_no.into(),
                        1i64.into(),
                        "出生".into(),
                        birth.into(),
                        place.into(),
                        Val::N,
                    ]);
                    let elsewhere = *self.rng.pick(names::ELSEWHERE);
                    self.tables.fuhyo.push(vec![
                        kid.clone().into(),
                        member_no.into(),
                        1i64.into(),
                        elsewhere.into(),
                        koseki_created.into(),
                    ]);
                    if case == Some(Case::FuhyoMeasureOnKin) && male {
                        // The Kyoto case: the measure is flagged in the 住民票 system only.
                        self.tables.measures.push(vec![
                            person_ref.clone().into(),
                            as_of.saturating_sub(Days::days(60)).into(),
                            1i64.into(),
                            0i64.into(),
                            1i64.into(),
                            self.now_ms.into(),
                        ]);
                    }
                }
                people[0].koseki_role = Some("子");
                people[0].father = Some(father_name);
                people[0].mother = Some(mother_given.to_owned());
                people[0].parent_relationship = if people[0].male {
                    "長男".into()
                } else {
                    "長女".into()
                };
                if people.len() > 1 {
                    // A single parent's children are in the parent's own 戸籍 in reality;
                    // here they share the grandparents' for brevity of the generator.
                    let parent = people[0].full();
                    for p in people.iter_mut().skip(1).filter(|p| p.relationship == "子") {
                        p.koseki_role = Some("子");
                        p.father = Some(parent.clone());
                    }
                }
            }
            self.tables.koseki.push(vec![
                kid.clone().into(),
                code.clone().into(),
                honseki.clone().into(),
                koseki_hittosha.clone().into(),
                koseki_created.into(),
                "current".into(),
            ]);
            self.report.koseki += 1;
            let mut ordered: Vec<usize> = (0..people.len())
                .filter(|i| people[*i].koseki_role.is_some())
                .collect();
            ordered.sort_by_key(|i| match people[*i].koseki_role {
                Some("筆頭者") => 0,
                Some("妻") => 1,
                _ => 2,
            });
            for i in ordered {
                member_no += 1;
                let p = &people[i];
                let present = !matches!(p.status, Status::Deceased);
                self.tables.members.push(vec![
                    kid.clone().into(),
                    member_no.into(),
                    p.id.clone().into(),
                    p.family.clone().into(),
                    p.given.clone().into(),
                    p.birth.into(),
                    if p.male { 1i64 } else { 2 }.into(),
                    p.father.clone().into(),
                    p.mother.clone().into(),
                    p.parent_relationship.clone().into(),
                    p.koseki_role.unwrap_or("子").into(),
                    if present { "in" } else { "removed" }.into(),
                ]);
                let place = *self.rng.pick(names::BIRTHPLACES);
                self.tables.events.push(vec![
                    kid.clone().into(),
                    member_no.into(),
                    1i64.into(),
                    "出生".into(),
                    p.birth.into(),
                    place.into(),
                    Val::N,
                ]);
                if couple && matches!(p.koseki_role, Some("筆頭者" | "妻")) {
                    let spouse = people
                        .iter()
                        .find(|q| q.id != p.id && matches!(q.koseki_role, Some("筆頭者" | "妻")))
                        .map(Person::full)
                        .unwrap_or_default();
                    self.tables.events.push(vec![
                        kid.clone().into(),
                        member_no.into(),
                        2i64.into(),
                        "婚姻".into(),
                        koseki_created.into(),
                        Val::N,
                        format!("【配偶者氏名】{spouse}").into(),
                    ]);
                }
                let mut seq = 0i64;
                if let Some(prev) = &previous_address {
                    seq += 1;
                    self.tables.fuhyo.push(vec![
                        kid.clone().into(),
                        member_no.into(),
                        seq.into(),
                        prev.clone().into(),
                        p.resident_since
                            .saturating_sub(Days::days(400))
                            .max(p.birth)
                            .into(),
                    ]);
                }
                seq += 1;
                self.tables.fuhyo.push(vec![
                    kid.clone().into(),
                    member_no.into(),
                    seq.into(),
                    address.clone().into(),
                    address_since.max(p.birth).into(),
                ]);
            }
            if case == Some(Case::KosekiPending) {
                let pid = self.id("c");
                self.tables.pending.push(vec![
                    pid.into(),
                    Val::N,
                    kid.clone().into(),
                    "戸籍届出（出生）".into(),
                    self.now_ms.into(),
                    Val::NI,
                ]);
            }
        }

        // Residents and what hangs on them.
        self.tables.households.push(vec![
            household_id.clone().into(),
            code.clone().into(),
            people[0].id.clone().into(),
            address.clone().into(),
        ]);
        self.report.households += 1;
        let hittosha = if honseki_here {
            people
                .iter()
                .find(|p| p.koseki_role == Some("筆頭者"))
                .map(Person::full)
                .or_else(|| people[0].father.clone())
        } else {
            Some(format!(
                "{}\u{3000}{}",
                family.0,
                self.rng.pick(names::MALE_NAMES).0
            ))
        };
        let dependents = people
            .iter()
            .filter(|p| p.age(as_of) < 19 || p.relationship == "母")
            .count() as u32;
        let muni: u64 = code.get(..5).and_then(|s| s.parse().ok()).unwrap_or(0);
        for (index, p) in people.iter().enumerate() {
            let age = p.age(as_of);
            let foreign_items = if p.foreign {
                let f = *self.rng.pick(names::FOREIGN);
                let status = *self.rng.pick(names::RESIDENCE_STATUSES);
                let until = as_of.saturating_add(Days::days(200 + self.rng.below(1500) as i64));
                let card = format!(
                    "{}{}{:08}{}{}",
                    char::from(b'A' + self.rng.below(26) as u8),
                    char::from(b'A' + self.rng.below(26) as u8),
                    self.rng.below(100_000_000),
                    char::from(b'A' + self.rng.below(26) as u8),
                    char::from(b'A' + self.rng.below(26) as u8)
                );
                Some((f.0, status, until, card))
            } else {
                None
            };
            self.tables.residents.push(vec![
                p.id.clone().into(),
                code.clone().into(),
                household_id.clone().into(),
                p.family.clone().into(),
                p.given.clone().into(),
                p.family_kana.clone().into(),
                p.given_kana.clone().into(),
                p.former.as_ref().map(|f| f.0.clone()).into(),
                p.former.as_ref().map(|f| f.1.clone()).into(),
                p.birth.into(),
                if p.male { 1i64 } else { 2 }.into(),
                p.relationship.into(),
                address.clone().into(),
                p.resident_since.into(),
                address_since.max(p.birth).into(),
                previous_address.clone().into(),
                (!p.foreign).then(|| honseki.clone()).into(),
                if p.foreign { None } else { hittosha.clone() }.into(),
                koseki_id.clone().filter(|_| p.koseki_role.is_some()).into(),
                p.status.code().into(),
                p.status_date.into(),
                foreign_items.as_ref().map(|f| f.0.to_owned()).into(),
                foreign_items.as_ref().map(|f| f.1.to_owned()).into(),
                foreign_items.as_ref().map(|f| f.2).into(),
                foreign_items.as_ref().map(|f| f.3.clone()).into(),
                self.now_ms.into(),
            ]);
            self.report.residents += 1;

            self.number_counter += 1;
            let body = ((muni % 10_000) * 10_000_000 + self.number_counter)
                .wrapping_mul(7_919_891)
                .wrapping_add(self.cfg.seed % 100_000_000_000)
                % 100_000_000_000;
            self.tables
                .numbers
                .push(vec![p.id.clone().into(), individual_number(body).into()]);

            // Seal: most adults; never for the no-seal case or the moved out and dead (a move
            // out abolishes it).
            let wants_seal = age >= 15
                && !(case == Some(Case::NoSeal) && index == 0)
                && (case == Some(Case::SealAbolished) || case.is_some() || self.rng.chance(0.7));
            if wants_seal {
                let hash = self.seal_hash(&p.family)?;
                self.seal_counter += 1;
                let abolished = (case == Some(Case::SealAbolished) && index == 0)
                    || matches!(p.status, Status::MovedOut | Status::Deceased);
                self.tables.seals.push(vec![
                    format!("{}-{:08}", &code, self.seal_counter).into(),
                    p.id.clone().into(),
                    date_between(
                        &mut self.rng,
                        p.birth.saturating_add(Days::days(15 * 366)),
                        as_of,
                    )
                    .into(),
                    if abolished { "abolished" } else { "active" }.into(),
                    if abolished {
                        Val::I(self.now_ms)
                    } else {
                        Val::NI
                    },
                    hash.into(),
                ]);
                self.report.seals += 1;
            }
            // Tax: adults, except the no-tax case.
            if age >= 18 && !(case == Some(Case::NoTaxData) && index == 0) {
                let deps = if index == 0 { dependents } else { 0 };
                self.tax_rows(p, deps);
            }
            // Card binding: everyone in a case household, most others.
            if case.is_some() || self.rng.chance(0.85) {
                // Serials are the municipality prefix and a running number: unique across
                // municipalities, and the same for the same seed.
                self.card_counter += 1;
                let serial = muni * 10_000_000_000 + self.card_counter;
                self.bindings.push(CardBinding::new(
                    &self.cfg.card_issuer_key_id,
                    serial,
                    &code,
                    &p.id,
                ));
                self.report.bindings += 1;
            }
        }

        // Case-specific rows and examples.
        let first = people[0].id.clone();
        match case {
            Some(Case::SupportMeasure) => {
                self.tables.measures.push(vec![
                    first.clone().into(),
                    as_of.saturating_sub(Days::days(100)).into(),
                    1i64.into(),
                    1i64.into(),
                    1i64.into(),
                    self.now_ms.into(),
                ]);
            }
            Some(Case::SupportMeasureInHousehold) if people.len() > 1 => {
                self.tables.measures.push(vec![
                    people[1].id.clone().into(),
                    as_of.saturating_sub(Days::days(100)).into(),
                    1i64.into(),
                    1i64.into(),
                    1i64.into(),
                    self.now_ms.into(),
                ]);
            }
            Some(Case::PendingChange) => {
                let pid = self.id("c");
                self.tables.pending.push(vec![
                    pid.into(),
                    first.clone().into(),
                    Val::N,
                    "転居届".into(),
                    self.now_ms.into(),
                    Val::NI,
                ]);
            }
            _ => {}
        }
        if let Some(case) = case {
            let example = match case {
                Case::Deceased => people
                    .iter()
                    .find(|p| p.status == Status::Deceased)
                    .map_or(first.clone(), |p| p.id.clone()),
                Case::UnderMinimumAge => people
                    .iter()
                    .filter(|p| p.age(as_of) < 15 && p.age(as_of) >= 10)
                    .map(|p| p.id.clone())
                    .next()
                    .unwrap_or(first.clone()),
                Case::FormerSurname => people
                    .iter()
                    .find(|p| p.former.is_some())
                    .map_or(first.clone(), |p| p.id.clone()),
                _ => first.clone(),
            };
            self.example(case, &example);
        }
        Ok(people.len() as u64)
    }
}

/// Sets up the municipality (fees, service windows) in `register`.
pub async fn configure_municipality(
    register: &Register,
    m: &Municipality,
) -> Result<(), IssuerError> {
    let mut conn = register.pool().acquire().await?;
    let mut tx = issuer::register::begin_plain(&mut conn).await?;
    write::upsert_municipality(&mut tx, m).await?;
    let since = Date::from_calendar_date(2020, time::Month::April, 1)
        .map_err(|_| IssuerError::Corrupt { what: "fee date" })?;
    for ty in CertificateType::ALL {
        let fee = match ty {
            CertificateType::KosekiFull | CertificateType::KosekiIndividual => 350,
            CertificateType::IncomeTax => 250,
            _ => 200,
        };
        write::set_fee(&mut tx, &m.code, ty, since, fee).await?;
        let koseki = matches!(
            ty,
            CertificateType::KosekiFull | CertificateType::KosekiIndividual
        );
        write::set_service_window(
            &mut tx,
            &m.code,
            &ServiceWindow {
                ty,
                offered: true,
                weekdays_only: koseki,
                opens_at_minute: if koseki { 9 * 60 } else { 6 * 60 + 30 },
                closes_at_minute: if koseki { 17 * 60 } else { 23 * 60 },
                max_copies: 5,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Generates a register into `register` and writes the card bindings as CSV to `bindings`
/// (see [`issuer::bindings`]). `progress` counts residents.
pub async fn generate(
    register: &Register,
    cfg: &GeneratorConfig,
    progress: &ProgressBar,
    bindings: &mut dyn Write,
) -> Result<GenerationReport, IssuerError> {
    let started = Instant::now();
    MunicipalityCode::parse(&cfg.municipality.code).map_err(|_| IssuerError::InvalidField {
        field: "municipality_code",
    })?;
    configure_municipality(register, &cfg.municipality).await?;
    let muni_seed: u64 = cfg.municipality.code.parse().unwrap_or(0);
    let mut g = Generator {
        cfg,
        rng: Rng::new(cfg.seed ^ muni_seed.wrapping_mul(0x2545_F491_4F6C_DD1D)),
        tables: Tables::new(),
        report: GenerationReport::default(),
        seal_hashes: HashMap::new(),
        number_counter: 0,
        seal_counter: 0,
        card_counter: 0,
        now_ms: issuer::calendar::unix_ms(
            cfg.as_of
                .with_hms(0, 0, 0)
                .map_err(|_| IssuerError::Corrupt { what: "as_of" })?
                .assume_offset(issuer::calendar::JST),
        ),
        bindings: Vec::new(),
    };
    issuer::bindings::write_header(bindings)?;
    progress.set_length(cfg.residents);
    let (max_params, anonymous) = match register.backend() {
        issuer::register::Backend::Sqlite => (MAX_PARAMS_SQLITE, true),
        issuer::register::Backend::Postgres => (MAX_PARAMS_POSTGRES, false),
    };
    let mut conn = register.pool().acquire().await?;
    if register.backend() == issuer::register::Backend::Sqlite {
        // A generated register is rebuilt, not recovered, if the machine dies mid-way: skip
        // the fsyncs of WAL checkpoints while loading, and restore them before returning.
        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = OFF").await?;
        // Resident ids are random, so their index takes inserts all over the B-tree: give the
        // loading connection a page cache (256 MiB) that holds the indexes of a large
        // register instead of SQLite's 2 MiB default.
        sqlx::Executor::execute(&mut *conn, "PRAGMA cache_size = -262144").await?;
    }
    let mut household_index = 0usize;
    while g.report.residents < cfg.residents {
        let batch_start = g.report.residents;
        while g.report.residents < cfg.residents
            && g.report.residents - batch_start < cfg.batch_residents as u64
        {
            let case = if household_index < Case::ALL.len() {
                Some(Case::ALL[household_index])
            } else if g.rng.chance(0.02) {
                Some(*g.rng.pick(&Case::ALL[1..]))
            } else {
                None
            };
            household_index += 1;
            let budget = cfg.residents - g.report.residents;
            g.household(case, budget)?;
        }
        let mut tx = issuer::register::begin_plain(&mut conn).await?;
        g.report.rows += g.tables.flush(&mut tx, max_params, anonymous).await?;
        tx.commit().await?;
        for b in g.bindings.drain(..) {
            issuer::bindings::write_row(bindings, &b)?;
        }
        progress.set_position(g.report.residents);
    }
    if register.backend() == issuer::register::Backend::Sqlite {
        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
        sqlx::Executor::execute(&mut *conn, "PRAGMA cache_size = -2000").await?;
    }
    progress.finish();
    g.report.elapsed = started.elapsed();
    Ok(g.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn individual_number_check_digit() {
        // Worked by hand: weights 2..7,2..6 from the right give 212; 212 mod 11 = 3; 11 - 3 = 8.
        assert_eq!(individual_number(12_345_678_901), "123456789018");
    }

    #[test]
    fn rng_is_fixed() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
