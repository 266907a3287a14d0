//! The record kinds of a full register load, each parsed into the rows it writes. The JSON
//! field names are the ones docs/register-import.md maps to the 住民記録システム標準仕様書's
//! managed items; the columns are issuer/migrations' register schema.

use base64::Engine;
use time::Date;

use super::fields::{Bad, Fields, check_individual_number};
use crate::calendar::format_date;

/// A value bound into an INSERT.
#[derive(Debug, Clone)]
pub enum Val {
    /// TEXT.
    Text(Option<String>),
    /// BIGINT.
    Int(Option<i64>),
    /// BLOB / BYTEA.
    Bytes(Vec<u8>),
}

impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(Some(v))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        Val::Text(v)
    }
}
impl From<Date> for Val {
    fn from(v: Date) -> Val {
        Val::Text(Some(format_date(v)))
    }
}
impl From<Option<Date>> for Val {
    fn from(v: Option<Date>) -> Val {
        Val::Text(v.map(format_date))
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(Some(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(Some(i64::from(v)))
    }
}

/// One row to insert, with the fields to blame when the database refuses it.
#[derive(Debug)]
pub struct Row {
    /// The table.
    pub table: &'static str,
    /// Column names and values.
    pub cols: Vec<(&'static str, Val)>,
    /// Skip the row when its key exists (content-addressed seal images).
    pub ignore_duplicate: bool,
    /// Blamed on a duplicate key, with the reason.
    pub key: (&'static str, &'static str),
    /// Blamed when a referenced row is missing (a foreign key), with the reason.
    pub reference: (&'static str, &'static str),
}

/// A row that must exist before a record can be written, where the schema has no foreign
/// key to say so (a 附票 entry's member, a pending change's resident).
#[derive(Debug)]
pub struct Exists {
    /// `SELECT 1 FROM ... WHERE ...` with `$1`, `$2` placeholders.
    pub sql: &'static str,
    /// The placeholders' values.
    pub binds: Vec<Val>,
    /// The field and reason when no row matches.
    pub blame: (&'static str, &'static str),
}

/// What one record writes, in order.
#[derive(Debug, Default)]
pub struct Plan {
    /// The municipality the record belongs to, checked against the register first.
    pub municipality: Option<String>,
    /// Checks before the rows.
    pub exists: Vec<Exists>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// The record kinds of a full load, in the order a file should list them (a record may
/// refer only to records before it).
pub const KINDS: &[&str] = &[
    "household",
    "resident",
    "seal_registration",
    "tax_record",
    "koseki",
    "koseki_member",
    "fuhyo",
    "support_measure",
    "pending_change",
];

/// Parses one record of `kind` into its plan; `now_ms` stamps `updated_at`.
pub fn plan(kind: &str, f: &mut Fields, now_ms: i64) -> Result<Plan, Bad> {
    match kind {
        "household" => household(f),
        "resident" => resident(f, now_ms, true),
        "seal_registration" => seal(f),
        "tax_record" => tax(f),
        "koseki" => koseki(f),
        "koseki_member" => koseki_member(f),
        "fuhyo" => fuhyo(f),
        "support_measure" => support_measure(f, now_ms),
        "pending_change" => pending_change(f),
        _ => Err(Bad::new(
            "kind",
            format!("unknown kind; one of {}", KINDS.join(", ")),
        )),
    }
}

fn row(table: &'static str, cols: Vec<(&'static str, Val)>) -> Row {
    Row {
        table,
        cols,
        ignore_duplicate: false,
        key: ("kind", "duplicate record"),
        reference: ("kind", "refers to a record not in the register"),
    }
}

fn household(f: &mut Fields) -> Result<Plan, Bad> {
    let municipality = f.municipality("municipality_code")?;
    let mut r = row(
        "households",
        vec![
            ("id", f.id("household_id")?.into()),
            ("municipality_code", municipality.clone().into()),
            ("head_resident_id", f.id("head_resident_id")?.into()),
            ("address", f.text("address")?.into()),
        ],
    );
    r.key = ("household_id", "household already in the register");
    Ok(Plan {
        municipality: Some(municipality),
        exists: Vec::new(),
        rows: vec![r],
    })
}

/// A resident (住民): the full-load record, and a 転入's new resident (`with_status` false:
/// a resident moving in is active).
pub fn resident(f: &mut Fields, now_ms: i64, with_status: bool) -> Result<Plan, Bad> {
    let municipality = f.municipality("municipality_code")?;
    let id = f.id("resident_id")?;
    let household_id = f.id("household_id")?;
    let mut cols: Vec<(&'static str, Val)> = vec![
        ("id", id.clone().into()),
        ("municipality_code", municipality.clone().into()),
        ("household_id", household_id.into()),
        ("family_name", f.text("family_name")?.into()),
        ("given_name", f.text("given_name")?.into()),
        ("family_name_kana", f.kana("family_name_kana")?.into()),
        ("given_name_kana", f.kana("given_name_kana")?.into()),
        ("former_surname", f.opt_text("former_surname")?.into()),
        (
            "former_surname_kana",
            f.opt_kana("former_surname_kana")?.into(),
        ),
    ];
    let birth = f.date("birth_date")?;
    cols.push(("birth_date", birth.into()));
    cols.push(("sex", f.sex("sex")?.into()));
    cols.push(("relationship", f.text("relationship")?.into()));
    cols.push(("address", f.text("address")?.into()));
    let resident_since = f.date("resident_since")?;
    if resident_since < birth {
        return Err(Bad::new("resident_since", "is before birth_date"));
    }
    let address_since = f.date("address_since")?;
    if address_since < birth {
        return Err(Bad::new("address_since", "is before birth_date"));
    }
    cols.push(("resident_since", resident_since.into()));
    cols.push(("address_since", address_since.into()));
    cols.push(("previous_address", f.opt_text("previous_address")?.into()));
    cols.push(("honseki", f.opt_text("honseki")?.into()));
    cols.push(("hittosha", f.opt_text("hittosha")?.into()));
    cols.push(("koseki_id", f.opt_id("koseki_id")?.into()));
    let statuses = ["active", "move_out_filed", "moved_out", "deceased"];
    let status = if with_status {
        f.one_of("status", &statuses)?
    } else {
        "active".to_owned()
    };
    let status_date = if with_status {
        f.opt_date("status_date")?
    } else {
        None
    };
    if status != "active" && status_date.is_none() {
        return Err(Bad::new(
            "status_date",
            "missing (required unless status is active)",
        ));
    }
    cols.push(("status", status.into()));
    cols.push(("status_date", status_date.into()));
    foreign_items(f, &mut cols)?;
    cols.push(("updated_at", now_ms.into()));
    let number = f.opt_text("individual_number")?;
    let mut main = row("residents", cols);
    main.key = ("resident_id", "resident already in the register");
    main.reference = (
        "household_id",
        "household not in the register (list it before its residents)",
    );
    let mut rows = vec![main];
    if let Some(number) = number {
        check_individual_number(&number).map_err(|r| Bad::new("individual_number", r))?;
        let mut n = row(
            "individual_numbers",
            vec![
                ("resident_id", id.into()),
                ("individual_number", number.into()),
            ],
        );
        n.key = (
            "individual_number",
            "already registered to another resident",
        );
        rows.push(n);
    }
    Ok(Plan {
        municipality: Some(municipality),
        exists: Vec::new(),
        rows,
    })
}

/// 外国人住民の記載事項: all four or none.
fn foreign_items(f: &mut Fields, cols: &mut Vec<(&'static str, Val)>) -> Result<(), Bad> {
    let nationality = f.opt_text("nationality")?;
    let status = f.opt_text("residence_status")?;
    let until = f.opt_date("period_of_stay_until")?;
    let card = f.opt_id("residence_card_number")?;
    let given = [
        ("nationality", nationality.is_some()),
        ("residence_status", status.is_some()),
        ("period_of_stay_until", until.is_some()),
        ("residence_card_number", card.is_some()),
    ];
    if given.iter().any(|g| g.1)
        && let Some((missing, _)) = given.iter().find(|g| !g.1)
    {
        return Err(Bad::new(
            *missing,
            "missing (foreign resident items are all four or none)",
        ));
    }
    cols.push(("nationality", nationality.into()));
    cols.push(("residence_status", status.into()));
    cols.push(("period_of_stay_until", until.into()));
    cols.push(("residence_card_number", card.into()));
    Ok(())
}

/// The largest seal impression accepted, bytes.
const MAX_SEAL_PNG: usize = 512 * 1024;

fn seal(f: &mut Fields) -> Result<Plan, Bad> {
    let number = f.id("registration_number")?;
    let resident = f.id("resident_id")?;
    let registered_on = f.date("registered_on")?;
    let status = f.one_of("status", &["active", "abolished", "erased"])?;
    let changed = f.opt_instant("status_changed_at")?;
    if status != "active" && changed.is_none() {
        return Err(Bad::new(
            "status_changed_at",
            "missing (required unless status is active)",
        ));
    }
    let b64 = f.text("impression_png_base64")?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| Bad::new("impression_png_base64", "is not base64"))?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(Bad::new("impression_png_base64", "is not a PNG image"));
    }
    if png.len() > MAX_SEAL_PNG {
        return Err(Bad::new("impression_png_base64", "larger than 512 KiB"));
    }
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &png));
    let mut image = row(
        "seal_images",
        vec![("sha256", sha.clone().into()), ("png", Val::Bytes(png))],
    );
    image.ignore_duplicate = true;
    let mut reg = row(
        "seal_registrations",
        vec![
            ("registration_number", number.into()),
            ("resident_id", resident.into()),
            ("registered_on", registered_on.into()),
            ("status", status.into()),
            ("status_changed_at", Val::Int(changed)),
            ("image_sha256", sha.into()),
        ],
    );
    reg.key = (
        "registration_number",
        "seal registration already in the register",
    );
    reg.reference = ("resident_id", "resident not in the register");
    Ok(Plan {
        municipality: None,
        exists: Vec::new(),
        rows: vec![image, reg],
    })
}

/// The largest amount in yen a tax field takes (a trillion: beyond any income).
const MAX_YEN: i64 = 1_000_000_000_000;

fn tax(f: &mut Fields) -> Result<Plan, Bad> {
    let mut cols: Vec<(&'static str, Val)> = vec![
        ("resident_id", f.id("resident_id")?.into()),
        ("fiscal_year", f.int("fiscal_year", 1989, 2200)?.into()),
    ];
    for field in [
        "salary_income",
        "total_income",
        "deductions",
        "taxable_income",
        "municipal_tax",
        "prefectural_tax",
    ] {
        cols.push((field, f.int(field, 0, MAX_YEN)?.into()));
    }
    cols.push(("dependents", f.int("dependents", 0, 99)?.into()));
    let mut r = row("tax_records", cols);
    r.key = (
        "fiscal_year",
        "tax record of this resident and fiscal year already in the register",
    );
    r.reference = ("resident_id", "resident not in the register");
    Ok(Plan {
        municipality: None,
        exists: Vec::new(),
        rows: vec![r],
    })
}

fn koseki(f: &mut Fields) -> Result<Plan, Bad> {
    let municipality = f.municipality("municipality_code")?;
    let mut r = row(
        "koseki",
        vec![
            ("id", f.id("koseki_id")?.into()),
            ("municipality_code", municipality.clone().into()),
            ("honseki", f.text("honseki")?.into()),
            ("hittosha_name", f.text("hittosha_name")?.into()),
            ("created_on", f.date("created_on")?.into()),
            ("status", f.one_of("status", &["current", "closed"])?.into()),
        ],
    );
    r.key = ("koseki_id", "koseki already in the register");
    Ok(Plan {
        municipality: Some(municipality),
        exists: Vec::new(),
        rows: vec![r],
    })
}

fn koseki_member(f: &mut Fields) -> Result<Plan, Bad> {
    let koseki_id = f.id("koseki_id")?;
    let member_no = f.int("member_no", 1, 9999)?;
    let mut member = row(
        "koseki_members",
        vec![
            ("koseki_id", koseki_id.clone().into()),
            ("member_no", member_no.into()),
            ("person_ref", f.id("person_ref")?.into()),
            ("family_name", f.text("family_name")?.into()),
            ("given_name", f.text("given_name")?.into()),
            ("birth_date", f.date("birth_date")?.into()),
            ("sex", f.sex("sex")?.into()),
            ("father_name", f.opt_text("father_name")?.into()),
            ("mother_name", f.opt_text("mother_name")?.into()),
            ("parent_relationship", f.text("parent_relationship")?.into()),
            ("role", f.text("role")?.into()),
            ("status", f.one_of("status", &["in", "removed"])?.into()),
        ],
    );
    member.key = ("member_no", "member of this koseki already in the register");
    member.reference = ("koseki_id", "koseki not in the register");
    let mut rows = vec![member];
    for (seq, mut e) in f.objects("events")?.into_iter().enumerate() {
        let mut ev = row(
            "koseki_events",
            vec![
                ("koseki_id", koseki_id.clone().into()),
                ("member_no", member_no.into()),
                ("seq", (seq as i64 + 1).into()),
                ("kind", e.text("event_kind")?.into()),
                ("event_date", e.date("event_date")?.into()),
                ("place", e.opt_text("place")?.into()),
                ("detail", e.opt_text("detail")?.into()),
            ],
        );
        e.finish()?;
        ev.key = ("events", "event already in the register");
        rows.push(ev);
    }
    Ok(Plan {
        municipality: None,
        exists: Vec::new(),
        rows,
    })
}

fn fuhyo(f: &mut Fields) -> Result<Plan, Bad> {
    let koseki_id = f.id("koseki_id")?;
    let member_no = f.int("member_no", 1, 9999)?;
    let mut r = row(
        "fuhyo_entries",
        vec![
            ("koseki_id", koseki_id.clone().into()),
            ("member_no", member_no.into()),
            ("seq", f.int("seq", 1, 9999)?.into()),
            ("address", f.text("address")?.into()),
            ("since", f.date("since")?.into()),
        ],
    );
    r.key = ("seq", "附票 entry already in the register");
    Ok(Plan {
        municipality: None,
        exists: vec![Exists {
            sql: "SELECT 1 FROM koseki_members WHERE koseki_id = $1 AND member_no = $2",
            binds: vec![koseki_id.into(), member_no.into()],
            blame: ("member_no", "koseki member not in the register"),
        }],
        rows: vec![r],
    })
}

fn support_measure(f: &mut Fields, now_ms: i64) -> Result<Plan, Bad> {
    let mut r = row(
        "support_measures",
        vec![
            ("person_ref", f.id("person_ref")?.into()),
            ("since", f.date("since")?.into()),
            (
                "covers_resident_record",
                f.bool("covers_resident_record")?.into(),
            ),
            ("covers_fuhyo", f.bool("covers_fuhyo")?.into()),
            ("active", f.bool("active")?.into()),
            ("updated_at", now_ms.into()),
        ],
    );
    r.key = (
        "person_ref",
        "support measure of this person already in the register",
    );
    Ok(Plan {
        municipality: None,
        exists: Vec::new(),
        rows: vec![r],
    })
}

fn pending_change(f: &mut Fields) -> Result<Plan, Bad> {
    let id = f.id("pending_change_id")?;
    let resident = f.opt_id("resident_id")?;
    let koseki = f.opt_id("koseki_id")?;
    let mut exists = Vec::new();
    match (&resident, &koseki) {
        (None, None) => {
            return Err(Bad::new("resident_id", "missing (or koseki_id)"));
        }
        (Some(r), _) => exists.push(Exists {
            sql: "SELECT 1 FROM residents WHERE id = $1",
            binds: vec![r.clone().into()],
            blame: ("resident_id", "resident not in the register"),
        }),
        (None, Some(k)) => exists.push(Exists {
            sql: "SELECT 1 FROM koseki WHERE id = $1",
            binds: vec![k.clone().into()],
            blame: ("koseki_id", "koseki not in the register"),
        }),
    }
    let mut r = row(
        "pending_changes",
        vec![
            ("id", id.into()),
            ("resident_id", resident.into()),
            ("koseki_id", koseki.into()),
            ("kind", f.text("change_type")?.into()),
            ("filed_at", f.instant("filed_at")?.into()),
            ("reflected_at", Val::Int(f.opt_instant("reflected_at")?)),
        ],
    );
    r.key = (
        "pending_change_id",
        "pending change already in the register",
    );
    Ok(Plan {
        municipality: None,
        exists,
        rows: vec![r],
    })
}
