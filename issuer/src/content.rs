//! From register data to certificate content: builds the document model
//! ([`kiosk_document::model::Certificate`]) for each type and its options.
//!
//! Only what the order asked for and the rules allowed reaches a certificate: each block names
//! the people whose data it prints, so the renderer can mark every page with its subjects.

use kiosk_document::ResidentRef;
use kiosk_document::era::JapaneseDate;
use kiosk_document::model::{Block, Event, Row, SealImpression, Section, Table};
use time::Date;

use crate::error::IssuerError;
use crate::model::CertificateOptions;
use crate::register::{Koseki, KosekiMember, Resident, SealRegistration, TaxRecord};

/// A date as certificates print it (令和8年11月24日); ISO if outside the era table.
pub fn printed_date(date: Date) -> String {
    JapaneseDate::from_gregorian(date.year(), u8::from(date.month()), date.day())
        .map(|j| j.format())
        .unwrap_or_else(|_| crate::calendar::format_date(date))
}

/// A date as 戸籍 certificates print it, with full-width digits (令和８年１１月２４日).
fn koseki_date(date: Date) -> String {
    JapaneseDate::from_gregorian(date.year(), u8::from(date.month()), date.day())
        .map(|j| j.format_fullwidth())
        .unwrap_or_else(|_| crate::calendar::format_date(date))
}

fn yen(amount: i64) -> String {
    // Thousands separators, as tax certificates print amounts.
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if amount < 0 { format!("-{out}") } else { out }
}

/// One person on a 住民票の写し, with what the options reveal about them.
pub struct RecordPerson<'a> {
    /// The person.
    pub resident: &'a Resident,
    /// The individual number, loaded only when the option asked for it.
    pub individual_number: Option<String>,
}

/// 住民票の写し: a household part (住所, 世帯主 when asked for) and one section per chosen
/// person.
pub fn resident_record(
    options: &CertificateOptions,
    head: Option<&Resident>,
    people: &[RecordPerson<'_>],
) -> Result<Vec<Block>, IssuerError> {
    let first = people.first().ok_or(IssuerError::Corrupt {
        what: "resident record without people",
    })?;
    let mut household_rows = vec![Row::new("住所", &first.resident.address)];
    let mut household_subjects: Vec<ResidentRef> =
        people.iter().map(|p| p.resident.id.clone()).collect();
    if options.include_household_head
        && let Some(head) = head
    {
        household_rows.push(Row::new("世帯主", head.full_name()));
        let head_ref = head.id.clone();
        if !household_subjects.contains(&head_ref) {
            household_subjects.push(head_ref);
        }
    }
    let mut blocks = vec![Block::Section(Section {
        heading: None,
        rows: household_rows,
        events: Vec::new(),
        subjects: household_subjects,
    })];
    for (index, person) in people.iter().enumerate() {
        let r = person.resident;
        let mut rows = vec![
            Row::new("氏名", r.full_name()),
            Row::new("フリガナ", r.full_name_kana()),
        ];
        if options.include_former_surname
            && let Some(former) = &r.former_surname
        {
            rows.push(Row::new("旧氏", former));
        }
        rows.push(Row::new("生年月日", printed_date(r.birth_date)));
        rows.push(Row::new("性別", r.sex.japanese()));
        if options.include_household_head {
            rows.push(Row::new("続柄", &r.relationship));
        }
        rows.push(Row::new(
            "住民となった年月日",
            printed_date(r.resident_since),
        ));
        rows.push(Row::new(
            "住所を定めた年月日",
            printed_date(r.address_since),
        ));
        if let Some(previous) = &r.previous_address {
            rows.push(Row::new("前住所", previous));
        }
        if options.include_honseki && r.foreign.is_none() {
            rows.push(Row::new("本籍", r.honseki.clone().unwrap_or_default()));
            rows.push(Row::new("筆頭者", r.hittosha.clone().unwrap_or_default()));
        }
        if let Some(number) = &person.individual_number {
            rows.push(Row::new("個人番号", number));
        }
        if options.include_foreign_resident_items
            && let Some(foreign) = &r.foreign
        {
            rows.push(Row::new("国籍・地域", &foreign.nationality));
            rows.push(Row::new("在留資格", &foreign.residence_status));
            rows.push(Row::new(
                "在留期間等の満了の日",
                printed_date(foreign.period_of_stay_until),
            ));
            rows.push(Row::new(
                "在留カード等の番号",
                &foreign.residence_card_number,
            ));
        }
        blocks.push(Block::Section(Section {
            heading: Some(format!("世帯員{}", index + 1)),
            rows,
            events: Vec::new(),
            subjects: vec![r.id.clone()],
        }));
    }
    Ok(blocks)
}

/// 住民票記載事項証明書: the fixed items of one person.
pub fn resident_record_items(
    options: &CertificateOptions,
    r: &Resident,
) -> Result<Vec<Block>, IssuerError> {
    let mut rows = vec![Row::new("氏名", r.full_name())];
    if options.include_former_surname
        && let Some(former) = &r.former_surname
    {
        rows.push(Row::new("旧氏", former));
    }
    rows.push(Row::new("生年月日", printed_date(r.birth_date)));
    rows.push(Row::new("性別", r.sex.japanese()));
    rows.push(Row::new("住所", &r.address));
    Ok(vec![Block::Section(Section {
        heading: None,
        rows,
        events: Vec::new(),
        subjects: vec![r.id.clone()],
    })])
}

/// 印鑑登録証明書: the impression and the holder's registered particulars.
pub fn seal_registration(
    options: &CertificateOptions,
    r: &Resident,
    seal: &SealRegistration,
) -> Result<Vec<Block>, IssuerError> {
    let holder = r.id.clone();
    let mut rows = vec![
        Row::new("登録番号", &seal.registration_number),
        Row::new("氏名", r.full_name()),
    ];
    if options.include_former_surname
        && let Some(former) = &r.former_surname
    {
        rows.push(Row::new("旧氏", former));
    }
    rows.push(Row::new("生年月日", printed_date(r.birth_date)));
    rows.push(Row::new("住所", &r.address));
    Ok(vec![
        Block::Seal(SealImpression {
            png: seal.image_png.clone(),
            subjects: vec![holder.clone()],
        }),
        Block::Section(Section {
            heading: None,
            rows,
            events: Vec::new(),
            subjects: vec![holder],
        }),
    ])
}

/// 所得・課税証明書 for one fiscal year.
pub fn income_tax(r: &Resident, tax: &TaxRecord) -> Result<Vec<Block>, IssuerError> {
    let taxpayer = r.id.clone();
    let fiscal = i32::try_from(tax.fiscal_year).unwrap_or(0);
    let caption = match (
        JapaneseDate::from_gregorian(fiscal, 6, 1),
        JapaneseDate::from_gregorian(fiscal - 1, 6, 1),
    ) {
        (Ok(year), Ok(income)) => {
            let year = year.format();
            let income = income.format();
            // "令和8年6月1日" -> "令和8年度", "令和7年分".
            let cut = |s: &str| s.split('年').next().unwrap_or_default().to_owned();
            format!("{}年度（{}年分）", cut(&year), cut(&income))
        }
        _ => format!("{}年度", tax.fiscal_year),
    };
    Ok(vec![
        Block::Section(Section {
            heading: None,
            rows: vec![
                Row::new("住所", &r.address),
                Row::new("氏名", r.full_name()),
                Row::new("生年月日", printed_date(r.birth_date)),
            ],
            events: Vec::new(),
            subjects: vec![taxpayer.clone()],
        }),
        Block::Table(Table {
            caption: Some(caption),
            columns: vec!["区分".into(), "金額（円）".into()],
            rows: vec![
                vec!["給与収入".into(), yen(tax.salary_income)],
                vec!["総所得金額".into(), yen(tax.total_income)],
                vec!["所得控除合計".into(), yen(tax.deductions)],
                vec!["課税標準額".into(), yen(tax.taxable_income)],
                vec!["市町村民税".into(), yen(tax.municipal_tax)],
                vec!["道府県民税".into(), yen(tax.prefectural_tax)],
                vec!["扶養人数（人）".into(), tax.dependents.to_string()],
            ],
            subjects: vec![taxpayer],
        }),
    ])
}

fn koseki_header(
    koseki: &Koseki,
    members: &[KosekiMember],
    requester: &ResidentRef,
) -> Result<Vec<Block>, IssuerError> {
    // The header prints the 筆頭者's name: it is about them when they are a member, otherwise
    // (筆頭者 removed long ago and not listed) about the requester who asked for it.
    let head = members
        .iter()
        .find(|m| m.role == "筆頭者")
        .map(|m| &m.person_ref)
        .unwrap_or(requester);
    Ok(vec![
        Block::Section(Section {
            heading: None,
            rows: vec![
                Row::new("本籍", &koseki.honseki),
                Row::new("氏名", &koseki.hittosha_name),
            ],
            events: Vec::new(),
            subjects: vec![head.clone()],
        }),
        Block::Section(Section {
            heading: Some("戸籍事項".into()),
            rows: Vec::new(),
            events: vec![Event {
                title: "戸籍編製".into(),
                rows: vec![Row::new("編製日", koseki_date(koseki.created_on))],
            }],
            subjects: vec![head.clone()],
        }),
    ])
}

/// The rows of a 身分事項 detail: each item it names in brackets (「【配偶者氏名】山田花子」)
/// its own row, labelled by the bare name, and text before any bracket under 「事項」. The
/// layout brackets every label once, so a detail's own brackets must not reach it.
fn detail_rows(detail: &str) -> Vec<Row> {
    let mut parts = detail.split('【');
    let mut rows: Vec<Row> = parts
        .next()
        .filter(|lead| !lead.trim().is_empty())
        .map(|lead| Row::new("事項", lead.trim()))
        .into_iter()
        .collect();
    for part in parts {
        match part.split_once('】') {
            Some((label, value)) if !label.trim().is_empty() => {
                rows.push(Row::new(label.trim(), value.trim()));
            }
            _ => rows.push(Row::new("事項", format!("【{part}"))),
        }
    }
    rows
}

fn koseki_member_block(m: &KosekiMember) -> Result<Block, IssuerError> {
    let mut rows = vec![
        Row::new("【名】", &m.given_name),
        Row::new("【生年月日】", koseki_date(m.birth_date)),
    ];
    if let Some(father) = &m.father_name {
        rows.push(Row::new("【父】", father));
    }
    if let Some(mother) = &m.mother_name {
        rows.push(Row::new("【母】", mother));
    }
    rows.push(Row::new("【続柄】", &m.parent_relationship));
    let events = m
        .events
        .iter()
        .map(|e| {
            // An event row's label is the bare item name: the layout prints it in its one
            // pair of brackets (【出生日】), as the official 身分事項 layout has it.
            let mut rows = vec![Row::new(format!("{}日", e.kind), koseki_date(e.date))];
            if let Some(place) = &e.place {
                rows.push(Row::new(format!("{}地", e.kind), place));
            }
            if let Some(detail) = &e.detail {
                rows.extend(detail_rows(detail));
            }
            Event {
                title: e.kind.clone(),
                rows,
            }
        })
        .collect();
    let heading = if m.present {
        "戸籍に記録されている者".to_owned()
    } else {
        "戸籍に記録されている者　除籍".to_owned()
    };
    Ok(Block::Section(Section {
        heading: Some(heading),
        rows,
        events,
        subjects: vec![m.person_ref.clone()],
    }))
}

/// 戸籍全部事項証明書: the header and every member; 戸籍個人事項証明書: the header and the
/// chosen member.
pub fn koseki(
    koseki: &Koseki,
    members: &[KosekiMember],
    only: Option<&ResidentRef>,
    requester: &ResidentRef,
) -> Result<Vec<Block>, IssuerError> {
    let mut blocks = koseki_header(koseki, members, requester)?;
    for m in members {
        if only.is_none_or(|only| *only == m.person_ref) {
            blocks.push(koseki_member_block(m)?);
        }
    }
    Ok(blocks)
}

/// 戸籍の附票の写し: 本籍・筆頭者 when asked for, then each member's address history.
pub fn fuhyo(
    options: &CertificateOptions,
    koseki: &Koseki,
    members: &[KosekiMember],
    requester: &ResidentRef,
) -> Result<Vec<Block>, IssuerError> {
    let mut blocks = Vec::new();
    if options.include_honseki {
        let mut header = koseki_header(koseki, members, requester)?;
        header.truncate(1);
        blocks.extend(header);
    }
    for m in members.iter().filter(|m| m.present) {
        let who = m.person_ref.clone();
        blocks.push(Block::Section(Section {
            heading: Some("附票に記録されている者".into()),
            rows: vec![
                Row::new("氏名", m.full_name()),
                Row::new("生年月日", printed_date(m.birth_date)),
            ],
            events: Vec::new(),
            subjects: vec![who.clone()],
        }));
        blocks.push(Block::Table(Table {
            caption: None,
            columns: vec!["住所".into(), "住所を定めた年月日".into()],
            rows: m
                .fuhyo
                .iter()
                .map(|f| vec![f.address.clone(), printed_date(f.since)])
                .collect(),
            subjects: vec![who],
        }));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_detail_naming_its_items_gives_a_row_per_item_without_its_brackets() {
        let rows = |detail: &str| -> Vec<(String, String)> {
            detail_rows(detail)
                .into_iter()
                .map(|r| (r.label, r.value))
                .collect()
        };
        let pair = |l: &str, v: &str| (l.to_owned(), v.to_owned());
        assert_eq!(
            rows("【配偶者氏名】木村さくら【従前戸籍】東京都千代田区"),
            [
                pair("配偶者氏名", "木村さくら"),
                pair("従前戸籍", "東京都千代田区")
            ]
        );
        assert_eq!(rows("夫の氏"), [pair("事項", "夫の氏")]);
        assert_eq!(
            rows("届出 【届出人】父"),
            [pair("事項", "届出"), pair("届出人", "父")]
        );
        assert_eq!(rows("【】x"), [pair("事項", "【】x")]);
        assert_eq!(rows("【未閉じ"), [pair("事項", "【未閉じ")]);
    }
    use super::*;

    #[test]
    fn yen_groups_thousands() {
        assert_eq!(yen(0), "0");
        assert_eq!(yen(999), "999");
        assert_eq!(yen(1000), "1,000");
        assert_eq!(yen(4_560_000), "4,560,000");
        assert_eq!(yen(-12_345), "-12,345");
    }
}
