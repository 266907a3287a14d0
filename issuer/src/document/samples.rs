//! Synthetic sample certificates of every type (fictional people), for tests, benchmarks and
//! previews. Never real personal data.

use kiosk_document::model::{
    Block, Certificate, Event, Header, IssuedAt, Municipality, Row, SealImpression, Section, Table,
};
use kiosk_document::{
    CertificateType, IssuanceId, ModelError, MunicipalityCode, ResidentRef, Serial,
};

/// A sample issue time: 2026-11-24 10:15:00 JST.
pub const SAMPLE_TIME: i64 = 1_795_482_900;

/// A very long address, to show wrapping.
pub const LONG_ADDRESS: &str = "東京都千代田区千代田一丁目一番一号　千代田グランドレジデンス東棟弐千参百四十五号室（管理組合気付、株式会社サンプル不動産管理部内）ＡＢＣ番館";

fn s(id: &str) -> Vec<ResidentRef> {
    id.split(',')
        .filter_map(|x| ResidentRef::parse(x).ok())
        .collect()
}

fn rows(items: &[(&str, &str)]) -> Vec<Row> {
    items.iter().map(|(l, v)| Row::new(*l, *v)).collect()
}

/// The sample municipality (千代田区, code 131016, matching the test PKI's signing cert).
pub fn municipality() -> Result<Municipality, ModelError> {
    Ok(Municipality {
        code: MunicipalityCode::parse("131016")?,
        name: "東京都千代田区".into(),
        mayor_title: "千代田区長".into(),
        mayor_name: "見本　一郎".into(),
    })
}

fn header(kind: CertificateType, serial: &str) -> Result<Header, ModelError> {
    Ok(Header {
        kind,
        municipality: municipality()?,
        serial: Serial::parse(serial)?,
        issuance_id: IssuanceId::parse("iss-01JD8X5Q7R2T9")?,
        issued_at: IssuedAt::from_unix_seconds(SAMPLE_TIME)?,
        certification: None,
    })
}

/// A sample of the given type.
pub fn sample(kind: CertificateType) -> Result<Certificate, ModelError> {
    match kind {
        CertificateType::ResidentRecord => resident_record(),
        CertificateType::ResidentRecordItems => resident_record_items(),
        CertificateType::SealRegistration => seal_registration(),
        CertificateType::IncomeTax => income_tax(),
        CertificateType::KosekiFull => koseki_full(),
        CertificateType::KosekiIndividual => koseki_individual(),
        CertificateType::KosekiFuhyo => koseki_fuhyo(),
    }
}

/// 住民票の写し: a household of two with 世帯主・続柄 and 本籍・筆頭者, one 旧氏, and a very
/// long address.
pub fn resident_record() -> Result<Certificate, ModelError> {
    let head = Section {
        heading: Some("世帯主　見本　太郎".into()),
        rows: rows(&[("住所", LONG_ADDRESS), ("世帯主", "見本　太郎")]),
        events: vec![],
        subjects: s("res-000101"),
    };
    let p1 = Section {
        heading: Some("１".into()),
        rows: rows(&[
            ("氏名", "見本　太郎"),
            ("ふりがな", "みほん　たろう"),
            ("生年月日", "昭和60年4月1日"),
            ("性別", "男"),
            ("続柄", "世帯主"),
            ("住民となった日", "平成27年10月1日"),
            ("住所を定めた日", "令和3年3月15日　転居"),
            ("本籍", "東京都千代田区千代田一丁目一番"),
            ("筆頭者", "見本　太郎"),
        ]),
        events: vec![],
        subjects: s("res-000101"),
    };
    let p2 = Section {
        heading: Some("２".into()),
        rows: rows(&[
            ("氏名", "見本　花子"),
            ("旧氏", "試験"),
            ("ふりがな", "みほん　はなこ"),
            ("生年月日", "昭和62年8月20日"),
            ("性別", "女"),
            ("続柄", "妻"),
            ("住民となった日", "令和元年5月1日"),
            ("住所を定めた日", "令和3年3月15日　転居"),
            ("本籍", "東京都千代田区千代田一丁目一番"),
            ("筆頭者", "見本　太郎"),
        ]),
        events: vec![],
        subjects: s("res-000102"),
    };
    Certificate::new(
        header(CertificateType::ResidentRecord, "R8-0001234")?,
        vec![Block::Section(head), Block::Section(p1), Block::Section(p2)],
    )
}

/// 住民票記載事項証明書 for one person.
pub fn resident_record_items() -> Result<Certificate, ModelError> {
    Certificate::new(
        header(CertificateType::ResidentRecordItems, "R8-0001235")?,
        vec![Block::Section(Section {
            heading: None,
            rows: rows(&[
                ("氏名", "見本　花子"),
                ("生年月日", "昭和62年8月20日"),
                ("性別", "女"),
                ("住所", "東京都千代田区千代田一丁目一番一号"),
            ]),
            events: vec![],
            subjects: s("res-000102"),
        })],
    )
}

/// 印鑑登録証明書 with a generated seal impression.
pub fn seal_registration() -> Result<Certificate, ModelError> {
    Certificate::new(
        header(CertificateType::SealRegistration, "R8-0001236")?,
        vec![
            Block::Seal(SealImpression {
                png: sample_seal_png(),
                subjects: s("res-000101"),
            }),
            Block::Section(Section {
                heading: None,
                rows: rows(&[
                    ("氏名", "見本　太郎"),
                    ("生年月日", "昭和60年4月1日"),
                    ("住所", "東京都千代田区千代田一丁目一番一号"),
                    ("登録番号", "第12345号"),
                ]),
                events: vec![],
                subjects: s("res-000101"),
            }),
        ],
    )
}

/// 所得・課税証明書 for one fiscal year.
pub fn income_tax() -> Result<Certificate, ModelError> {
    let subj = s("res-000101");
    Certificate::new(
        header(CertificateType::IncomeTax, "R8-0001237")?,
        vec![
            Block::Section(Section {
                heading: None,
                rows: rows(&[
                    ("年度", "令和8年度（令和7年分）"),
                    ("住所", "東京都千代田区千代田一丁目一番一号"),
                    ("氏名", "見本　太郎"),
                ]),
                events: vec![],
                subjects: subj.clone(),
            }),
            Block::Table(Table {
                caption: Some("所得の状況".into()),
                columns: vec!["区分".into(), "収入金額".into(), "所得金額".into()],
                rows: vec![
                    vec!["給与".into(), "5,200,000円".into(), "3,640,000円".into()],
                    vec![
                        "雑（公的年金等以外）".into(),
                        "120,000円".into(),
                        "70,000円".into(),
                    ],
                    vec!["合計".into(), "5,320,000円".into(), "3,710,000円".into()],
                ],
                subjects: subj.clone(),
            }),
            Block::Table(Table {
                caption: Some("控除と税額".into()),
                columns: vec![
                    "所得控除合計".into(),
                    "課税標準額".into(),
                    "市区町村民税".into(),
                    "都道府県民税".into(),
                ],
                rows: vec![vec![
                    "1,250,000円".into(),
                    "2,460,000円".into(),
                    "147,600円".into(),
                    "98,400円".into(),
                ]],
                subjects: subj,
            }),
        ],
    )
}

fn koseki_header() -> Block {
    Block::Section(Section {
        heading: None,
        rows: rows(&[
            ("本籍", "東京都千代田区千代田一丁目一番"),
            ("氏名", "見本　太郎"),
            ("戸籍事項", "【編製日】平成25年6月1日"),
        ]),
        events: vec![],
        subjects: s("res-000101"),
    })
}

#[allow(clippy::too_many_arguments)]
fn koseki_member(
    no: u32,
    name: &str,
    birth: &str,
    father: &str,
    mother: &str,
    rel: &str,
    subject: &str,
    married: bool,
) -> Block {
    let mut events = vec![Event {
        title: "出生".into(),
        rows: rows(&[
            ("出生日", birth),
            ("出生地", "東京都千代田区"),
            ("届出日", birth),
            ("届出人", "父"),
        ]),
    }];
    if married {
        events.push(Event {
            title: "婚姻".into(),
            rows: rows(&[
                ("婚姻日", "平成25年6月1日"),
                (
                    "配偶者氏名",
                    if rel == "妻" {
                        "見本　太郎"
                    } else {
                        "見本　花子"
                    },
                ),
                ("従前戸籍", "東京都千代田区千代田一丁目一番　見本　一郎"),
            ]),
        });
    }
    Block::Section(Section {
        heading: Some(format!("戸籍に記録されている者（{no}）")),
        rows: rows(&[
            ("名", name),
            ("生年月日", birth),
            ("父", father),
            ("母", mother),
            ("続柄", rel),
        ]),
        events,
        subjects: s(subject),
    })
}

/// 戸籍全部事項証明書: four members with 身分事項 — several pages.
pub fn koseki_full() -> Result<Certificate, ModelError> {
    let mut blocks = vec![koseki_header()];
    blocks.push(koseki_member(
        1,
        "太郎",
        "昭和60年4月1日",
        "見本　一郎",
        "見本　和子",
        "長男",
        "res-000101",
        true,
    ));
    blocks.push(koseki_member(
        2,
        "花子",
        "昭和62年8月20日",
        "試験　次郎",
        "試験　洋子",
        "長女",
        "res-000102",
        true,
    ));
    blocks.push(koseki_member(
        3,
        "一樹",
        "平成27年2月14日",
        "見本　太郎",
        "見本　花子",
        "長男",
        "res-000103",
        false,
    ));
    blocks.push(koseki_member(
        4,
        "美咲",
        "令和2年7月7日",
        "見本　太郎",
        "見本　花子",
        "長女",
        "res-000104",
        false,
    ));
    blocks.push(koseki_member(
        5,
        "健二",
        "令和5年12月1日",
        "見本　太郎",
        "見本　花子",
        "二男",
        "res-000105",
        false,
    ));
    Certificate::new(header(CertificateType::KosekiFull, "R8-0001238")?, blocks)
}

/// 戸籍個人事項証明書 of one member.
pub fn koseki_individual() -> Result<Certificate, ModelError> {
    Certificate::new(
        header(CertificateType::KosekiIndividual, "R8-0001239")?,
        vec![
            koseki_header(),
            koseki_member(
                3,
                "一樹",
                "平成27年2月14日",
                "見本　太郎",
                "見本　花子",
                "長男",
                "res-000103",
                false,
            ),
        ],
    )
}

/// 戸籍の附票の写し: address history.
pub fn koseki_fuhyo() -> Result<Certificate, ModelError> {
    let subj = s("res-000101");
    Certificate::new(
        header(CertificateType::KosekiFuhyo, "R8-0001240")?,
        vec![
            Block::Section(Section {
                heading: None,
                rows: rows(&[
                    ("本籍", "東京都千代田区千代田一丁目一番"),
                    ("氏名", "見本　太郎"),
                ]),
                events: vec![],
                subjects: subj.clone(),
            }),
            Block::Table(Table {
                caption: Some("附票に記録されている者　見本　太郎".into()),
                columns: vec!["住所".into(), "住所を定めた年月日".into()],
                rows: vec![
                    vec![
                        "神奈川県横浜市中区本町六丁目五十番地の十".into(),
                        "平成25年6月1日".into(),
                    ],
                    vec![
                        "東京都港区芝公園四丁目二番八号".into(),
                        "平成29年4月1日".into(),
                    ],
                    vec![LONG_ADDRESS.into(), "令和3年3月15日".into()],
                ],
                subjects: subj,
            }),
        ],
    )
}

/// A generated round red seal impression (印影) as PNG, drawn procedurally: a double ring
/// and a few strokes. Not any real seal.
pub fn sample_seal_png() -> Vec<u8> {
    let n = 160usize;
    let mut px = vec![255u8; n * n * 3];
    let c = n as f32 / 2.0;
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as f32 - c, y as f32 - c);
            let r = (dx * dx + dy * dy).sqrt();
            let ring = (r > 70.0 && r < 77.0) || (r > 64.0 && r < 66.0);
            // Two stylised characters: vertical and horizontal strokes inside the ring.
            let stroke = r < 60.0
                && ((dx.abs() < 4.0 && dy.abs() < 50.0)
                    || (dy.abs() < 3.5 && (dx + 20.0).abs() < 26.0 && (dy + 25.0).abs() < 4.0)
                    || ((dy - 18.0).abs() < 3.5 && dx.abs() < 40.0)
                    || ((dx - 28.0).abs() < 3.5 && (dy + 5.0).abs() < 35.0)
                    || ((dx + 30.0).abs() < 3.5 && (dy - 5.0).abs() < 35.0));
            if ring || stroke {
                let o = (y * n + x) * 3;
                px[o..o + 3].copy_from_slice(&[190, 25, 35]);
            }
        }
    }
    encode_png_rgb(n as u32, n as u32, &px)
}

/// A minimal PNG encoder (RGB8, stored deflate blocks). Enough for small generated images
/// without an image library.
pub fn encode_png_rgb(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(rgb.len() + h as usize);
    for row in rgb.chunks(w as usize * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    // zlib: header, stored blocks, adler32
    let mut z = vec![0x78, 0x01];
    let mut chunks = raw.chunks(65_535).peekable();
    while let Some(ch) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        let len = ch.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(ch);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
