-- The resident register of one or more municipalities, the issuance configuration, and the
-- issued-document registry. Portable column types only: BIGINT (instants as unix milliseconds,
-- flags as 0/1, money as yen), TEXT (ids, names, calendar dates as ISO 'YYYY-MM-DD', which sort
-- correctly as text), and bytes (BLOB here, BYTEA in the PostgreSQL twin of this file).

CREATE TABLE municipalities (
    code TEXT PRIMARY KEY,                -- 6-digit 全国地方公共団体コード
    name TEXT NOT NULL,                   -- 千代田区
    prefecture TEXT NOT NULL,             -- 東京都
    mayor_title TEXT NOT NULL,            -- 千代田区長
    mayor_name TEXT NOT NULL,
    minimum_age BIGINT NOT NULL,          -- コンビニ交付 is refused below this age (e.g. 15)
    tax_years_offered BIGINT NOT NULL     -- how many fiscal years back 所得・課税証明書 is offered
);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    head_resident_id TEXT NOT NULL,
    address TEXT NOT NULL
);

-- id is the opaque resident reference that leaves the issuer: random, never the individual
-- number, never derived from personal data.
CREATE TABLE residents (
    id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    household_id TEXT NOT NULL REFERENCES households (id),
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    former_surname TEXT,                  -- 旧氏 (registered for 旧氏併記)
    former_surname_kana TEXT,
    birth_date TEXT NOT NULL,
    sex BIGINT NOT NULL,                  -- 1 男, 2 女
    relationship TEXT NOT NULL,           -- 続柄 to the household head: 世帯主, 妻, 子, 母 ...
    address TEXT NOT NULL,
    resident_since TEXT NOT NULL,         -- 住民となった年月日
    address_since TEXT NOT NULL,          -- 住所を定めた年月日
    previous_address TEXT,                -- 前住所
    honseki TEXT,                         -- 本籍 (Japanese nationals)
    hittosha TEXT,                        -- 筆頭者
    koseki_id TEXT,                       -- the 戸籍 when this municipality keeps it
    status TEXT NOT NULL,                 -- active, move_out_filed, moved_out, deceased
    status_date TEXT,
    nationality TEXT,                     -- 国籍・地域 (foreign residents)
    residence_status TEXT,                -- 在留資格
    period_of_stay_until TEXT,            -- 在留期間の満了の日
    residence_card_number TEXT,           -- 在留カード等の番号
    updated_at BIGINT NOT NULL
);
CREATE INDEX residents_household ON residents (household_id);
CREATE INDEX residents_koseki ON residents (koseki_id);

-- Kept apart so that no query about residents touches it unless it asks for it.
CREATE TABLE individual_numbers (
    resident_id TEXT PRIMARY KEY REFERENCES residents (id),
    individual_number TEXT NOT NULL UNIQUE
);

-- Seal impressions, content-addressed: identical images are stored once.
CREATE TABLE seal_images (
    sha256 TEXT PRIMARY KEY,
    png BLOB NOT NULL
);

CREATE TABLE seal_registrations (
    registration_number TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id),
    registered_on TEXT NOT NULL,
    status TEXT NOT NULL,                 -- active, abolished (廃止), erased (抹消)
    status_changed_at BIGINT,
    image_sha256 TEXT NOT NULL REFERENCES seal_images (sha256)
);
CREATE INDEX seal_registrations_resident ON seal_registrations (resident_id);

CREATE TABLE tax_records (
    resident_id TEXT NOT NULL REFERENCES residents (id),
    fiscal_year BIGINT NOT NULL,          -- 年度 (Gregorian); income of the previous calendar year
    salary_income BIGINT NOT NULL,        -- 給与収入
    total_income BIGINT NOT NULL,         -- 総所得金額
    deductions BIGINT NOT NULL,           -- 所得控除合計
    taxable_income BIGINT NOT NULL,       -- 課税標準額
    municipal_tax BIGINT NOT NULL,        -- 市町村民税
    prefectural_tax BIGINT NOT NULL,      -- 道府県民税
    dependents BIGINT NOT NULL,           -- 扶養人数
    PRIMARY KEY (resident_id, fiscal_year)
);

CREATE TABLE koseki (
    id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    honseki TEXT NOT NULL,
    hittosha_name TEXT NOT NULL,
    created_on TEXT NOT NULL,             -- 編製日
    status TEXT NOT NULL                  -- current, closed (除籍)
);

-- person_ref is the opaque reference of the member: the resident id when the member lives
-- here, a random reference otherwise.
CREATE TABLE koseki_members (
    koseki_id TEXT NOT NULL REFERENCES koseki (id),
    member_no BIGINT NOT NULL,
    person_ref TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex BIGINT NOT NULL,
    father_name TEXT,
    mother_name TEXT,
    parent_relationship TEXT NOT NULL,    -- 父母との続柄: 長男, 長女, 二男 ...
    role TEXT NOT NULL,                   -- 筆頭者, 夫, 妻, 子
    status TEXT NOT NULL,                 -- in, removed (除籍: death, marriage out ...)
    PRIMARY KEY (koseki_id, member_no)
);
CREATE INDEX koseki_members_person ON koseki_members (person_ref);

CREATE TABLE koseki_events (
    koseki_id TEXT NOT NULL,
    member_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,                   -- 出生, 婚姻, 死亡, 編製 ...
    event_date TEXT NOT NULL,
    place TEXT,
    detail TEXT,
    PRIMARY KEY (koseki_id, member_no, seq)
);

-- 戸籍の附票: the address history of each member of a 戸籍.
CREATE TABLE fuhyo_entries (
    koseki_id TEXT NOT NULL,
    member_no BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    address TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (koseki_id, member_no, seq)
);

-- 住民基本台帳事務における支援措置, keyed by person reference: a resident here, or a member of a
-- 戸籍 kept here who lives elsewhere (the 附票 measure is the 本籍地's). The two scope flags
-- record the two systems; the issuer refuses on an active measure whatever the flags say,
-- because the Kyoto case was a 附票 flag missing while the 住民票 flag was set.
CREATE TABLE support_measures (
    person_ref TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    covers_resident_record BIGINT NOT NULL,
    covers_fuhyo BIGINT NOT NULL,
    active BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A change filed but not reflected yet (転入当日, 外字登録中, a pending 戸籍届出 ...).
CREATE TABLE pending_changes (
    id TEXT PRIMARY KEY,
    resident_id TEXT,
    koseki_id TEXT,
    kind TEXT NOT NULL,
    filed_at BIGINT NOT NULL,
    reflected_at BIGINT
);
CREATE INDEX pending_changes_resident ON pending_changes (resident_id);
CREATE INDEX pending_changes_koseki ON pending_changes (koseki_id);

CREATE TABLE fee_schedule (
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    certificate_type TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    fee_yen BIGINT NOT NULL,
    PRIMARY KEY (municipality_code, certificate_type, effective_from)
);

-- Per type: whether it is offered at stores, its daily hours in Japan time (minutes after
-- midnight), weekdays only (戸籍), and the most copies in one order.
CREATE TABLE service_windows (
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    certificate_type TEXT NOT NULL,
    offered BIGINT NOT NULL,
    weekdays_only BIGINT NOT NULL,
    opens_at_minute BIGINT NOT NULL,
    closes_at_minute BIGINT NOT NULL,
    max_copies BIGINT NOT NULL,
    PRIMARY KEY (municipality_code, certificate_type)
);

-- Extra closed days (public holidays for weekday-only types, a fee-change stop day).
CREATE TABLE service_closed_dates (
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    closed_on TEXT NOT NULL,
    weekday_types_only BIGINT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (municipality_code, closed_on)
);

CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL REFERENCES municipalities (code),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    note TEXT NOT NULL
);

-- The kill switch.
CREATE TABLE service_switch (
    municipality_code TEXT PRIMARY KEY REFERENCES municipalities (code),
    suspended BIGINT NOT NULL,
    reason TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);

-- One row per rendered order; request_digest makes Render idempotent by issuance id.
CREATE TABLE render_requests (
    issuance_id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL,
    requester_ref TEXT NOT NULL,
    request_digest BLOB NOT NULL,
    rendered_at BIGINT NOT NULL
);

CREATE TABLE issued_documents (
    serial TEXT PRIMARY KEY,
    issuance_id TEXT NOT NULL REFERENCES render_requests (issuance_id),
    position BIGINT NOT NULL,
    municipality_code TEXT NOT NULL,
    certificate_type TEXT NOT NULL,
    requester_ref TEXT NOT NULL,
    page_subjects TEXT NOT NULL,          -- per page, subject refs joined by ',' and pages by ';'
    page_count BIGINT NOT NULL,
    content_digest BLOB NOT NULL,
    pdf_sha256 BLOB NOT NULL,
    pdf BLOB NOT NULL,
    fee_yen BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    status TEXT NOT NULL,                 -- issued, voided
    voided_at BIGINT,
    void_reason TEXT
);
CREATE INDEX issued_documents_issuance ON issued_documents (issuance_id);
