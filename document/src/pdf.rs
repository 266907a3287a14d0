//! A minimal, defensive reader for the PDFs the issuer writes: classic cross-reference
//! tables (with incremental updates chained by `/Prev`), direct objects, and the page tree;
//! and the little writing the issuer's signer needs on top ([`Obj::write`],
//! [`incremental_update`]), so that what is written and what is read back share one syntax.
//!
//! It reads untrusted bytes (the gateway re-reads markers from what the issuer sent), so every
//! step is bounded: input size, nesting depth, `/Prev` chain length, page count, and every
//! malformed construct is a [`PdfError`]. It does not decode streams and does not support
//! cross-reference streams or object streams: a PDF that needs them was not written by us and
//! is rejected.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Largest PDF accepted.
pub const MAX_PDF_LEN: usize = 64 << 20;
const MAX_DEPTH: usize = 32;
const MAX_PREV: usize = 16;
const MAX_PAGES: usize = 4096;
const MAX_OBJ_NUM: u32 = 1 << 22;

/// Why a PDF could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    /// Larger than [`MAX_PDF_LEN`].
    #[error("pdf too large")]
    TooLarge,
    /// Syntax error at a byte offset.
    #[error("pdf syntax error at byte {0}")]
    Syntax(usize),
    /// A structure this reader does not support (xref streams, object streams).
    #[error("unsupported pdf structure: {0}")]
    Unsupported(&'static str),
    /// A required object or key is missing or of the wrong type.
    #[error("pdf structure: {0}")]
    Structure(&'static str),
}

/// A PDF object.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real, kept as its source text so it serialises back unchanged.
    Real(String),
    /// A string (literal or hex), decoded bytes.
    Str(Vec<u8>),
    /// A name, decoded (without the slash).
    Name(Vec<u8>),
    /// An array.
    Array(Vec<Obj>),
    /// A dictionary (key order preserved).
    Dict(Dict),
    /// An indirect reference.
    Ref(u32, u16),
    /// A stream: its dictionary (data not kept).
    Stream(Dict),
}

/// A dictionary with preserved key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict(pub Vec<(Vec<u8>, Obj)>);

impl Dict {
    /// The value of a key.
    pub fn get(&self, key: &[u8]) -> Option<&Obj> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets (replaces or appends) a key.
    pub fn set(&mut self, key: &[u8], value: Obj) {
        if let Some(e) = self.0.iter_mut().find(|(k, _)| k == key) {
            e.1 = value;
        } else {
            self.0.push((key.to_vec(), value));
        }
    }
}

impl Obj {
    /// As a dictionary.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Obj::Dict(d) | Obj::Stream(d) => Some(d),
            _ => None,
        }
    }

    /// Serialises the object in PDF syntax.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Obj::Null => out.extend_from_slice(b"null"),
            Obj::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Obj::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Obj::Real(s) => out.extend_from_slice(s.as_bytes()),
            Obj::Str(s) => {
                out.push(b'<');
                for b in s {
                    out.extend_from_slice(format!("{b:02X}").as_bytes());
                }
                out.push(b'>');
            }
            Obj::Name(n) => write_name(n, out),
            Obj::Array(a) => {
                out.push(b'[');
                for (i, o) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    o.write(out);
                }
                out.push(b']');
            }
            Obj::Dict(d) | Obj::Stream(d) => {
                out.extend_from_slice(b"<<");
                for (k, v) in &d.0 {
                    write_name(k, out);
                    out.push(b' ');
                    v.write(out);
                    out.push(b'\n');
                }
                out.extend_from_slice(b">>");
            }
            Obj::Ref(n, g) => out.extend_from_slice(format!("{n} {g} R").as_bytes()),
        }
    }
}

fn write_name(n: &[u8], out: &mut Vec<u8>) {
    out.push(b'/');
    for &b in n {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'*' | b',') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0c | 0)
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(b: &'a [u8], pos: usize) -> Self {
        Lexer { b, pos }
    }

    fn err<T>(&self) -> Result<T, PdfError> {
        Err(PdfError::Syntax(self.pos))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            if is_ws(c) {
                self.pos += 1;
            } else if c == b'%' {
                while self.pos < self.b.len() && !matches!(self.b[self.pos], b'\n' | b'\r') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn keyword(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.pos < self.b.len() && !is_ws(self.b[self.pos]) && !is_delim(self.b[self.pos]) {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    fn expect_keyword(&mut self, kw: &[u8]) -> Result<(), PdfError> {
        self.skip_ws();
        if self.keyword() != kw {
            return self.err();
        }
        Ok(())
    }

    fn uint(&mut self) -> Result<u64, PdfError> {
        self.skip_ws();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or(PdfError::Syntax(self.pos))?;
            self.pos += 1;
        }
        if self.pos == start {
            return self.err();
        }
        Ok(v)
    }

    fn object(&mut self, depth: usize) -> Result<Obj, PdfError> {
        if depth > MAX_DEPTH {
            return Err(PdfError::Structure("nesting too deep"));
        }
        self.skip_ws();
        let Some(c) = self.peek() else {
            return self.err();
        };
        match c {
            b'/' => {
                self.pos += 1;
                Ok(Obj::Name(self.name_body()?))
            }
            b'(' => self.literal_string(),
            b'<' if self.b.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut d = Dict::default();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b'>') if self.b.get(self.pos + 1) == Some(&b'>') => {
                            self.pos += 2;
                            break;
                        }
                        Some(b'/') => {
                            self.pos += 1;
                            let k = self.name_body()?;
                            let v = self.object(depth + 1)?;
                            d.0.push((k, v));
                        }
                        _ => return self.err(),
                    }
                }
                // A stream?
                let save = self.pos;
                self.skip_ws();
                if self.b[self.pos..].starts_with(b"stream") {
                    return Ok(Obj::Stream(d));
                }
                self.pos = save;
                Ok(Obj::Dict(d))
            }
            b'<' => self.hex_string(),
            b'[' => {
                self.pos += 1;
                let mut a = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        break;
                    }
                    if a.len() > 100_000 {
                        return Err(PdfError::Structure("array too long"));
                    }
                    a.push(self.object(depth + 1)?);
                }
                Ok(Obj::Array(a))
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number_or_ref(),
            _ => {
                let kw = self.keyword();
                match kw {
                    b"null" => Ok(Obj::Null),
                    b"true" => Ok(Obj::Bool(true)),
                    b"false" => Ok(Obj::Bool(false)),
                    _ => self.err(),
                }
            }
        }
    }

    fn number_or_ref(&mut self) -> Result<Obj, PdfError> {
        let start = self.pos;
        let tok = self.keyword();
        let s = std::str::from_utf8(tok).map_err(|_| PdfError::Syntax(start))?;
        if tok.iter().all(u8::is_ascii_digit) {
            // Maybe `n g R`.
            let save = self.pos;
            self.skip_ws();
            let gstart = self.pos;
            let g = self.keyword();
            if !g.is_empty() && g.len() <= 5 && g.iter().all(u8::is_ascii_digit) {
                self.skip_ws();
                if self.peek() == Some(b'R') {
                    let after = self.b.get(self.pos + 1).copied();
                    if after.is_none_or(|c| is_ws(c) || is_delim(c)) {
                        self.pos += 1;
                        let n: u32 = s.parse().map_err(|_| PdfError::Syntax(start))?;
                        let g: u16 = std::str::from_utf8(g)
                            .ok()
                            .and_then(|g| g.parse().ok())
                            .ok_or(PdfError::Syntax(gstart))?;
                        return Ok(Obj::Ref(n, g));
                    }
                }
            }
            self.pos = save;
        }
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Obj::Int(i));
        }
        if s.parse::<f64>().is_ok() && s.len() < 40 {
            return Ok(Obj::Real(s.to_owned()));
        }
        Err(PdfError::Syntax(start))
    }

    fn name_body(&mut self) -> Result<Vec<u8>, PdfError> {
        let raw = self.keyword();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'#' {
                let h = raw.get(i + 1..i + 3).ok_or(PdfError::Syntax(self.pos))?;
                let v = std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PdfError::Syntax(self.pos))?;
                out.push(v);
                i += 3;
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        Ok(out)
    }

    fn literal_string(&mut self) -> Result<Obj, PdfError> {
        self.pos += 1;
        let mut out = Vec::new();
        let mut level = 1usize;
        loop {
            let Some(c) = self.peek() else {
                return self.err();
            };
            self.pos += 1;
            match c {
                b'(' => {
                    level += 1;
                    out.push(c);
                }
                b')' => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                    out.push(c);
                }
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err();
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xFF) as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
        Ok(Obj::Str(out))
    }

    fn hex_string(&mut self) -> Result<Obj, PdfError> {
        self.pos += 1;
        let mut nibbles = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err();
            };
            self.pos += 1;
            match c {
                b'>' => break,
                c if is_ws(c) => {}
                c => {
                    let v = (c as char).to_digit(16).ok_or(PdfError::Syntax(self.pos))?;
                    nibbles.push(v as u8);
                }
            }
        }
        if nibbles.len() % 2 == 1 {
            nibbles.push(0);
        }
        Ok(Obj::Str(
            nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect(),
        ))
    }
}

/// A parsed PDF: the merged cross-reference table and the newest trailer.
#[derive(Debug)]
pub struct PdfFile<'a> {
    bytes: &'a [u8],
    /// Object number → (generation, byte offset), newest revision wins.
    offsets: HashMap<u32, (u16, usize)>,
    /// The newest trailer.
    pub trailer: Dict,
    /// Offset of the newest cross-reference section.
    pub startxref: usize,
}

impl<'a> PdfFile<'a> {
    /// Parses the cross-reference chain.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PdfError> {
        if bytes.len() > MAX_PDF_LEN {
            return Err(PdfError::TooLarge);
        }
        if !bytes.starts_with(b"%PDF-") {
            return Err(PdfError::Structure("no %PDF header"));
        }
        let tail_start = bytes.len().saturating_sub(1024);
        let tail = &bytes[tail_start..];
        let sx = tail
            .windows(9)
            .rposition(|w| w == b"startxref")
            .ok_or(PdfError::Structure("no startxref"))?;
        let mut lx = Lexer::new(bytes, tail_start + sx + 9);
        let startxref = usize::try_from(lx.uint()?).map_err(|_| PdfError::Syntax(lx.pos))?;
        let mut offsets = HashMap::new();
        let mut newest_trailer = None;
        let mut next = Some(startxref);
        let mut seen = HashSet::new();
        while let Some(off) = next {
            if seen.len() >= MAX_PREV || !seen.insert(off) {
                return Err(PdfError::Structure("xref chain loops or is too long"));
            }
            if off >= bytes.len() {
                return Err(PdfError::Structure("xref offset out of range"));
            }
            let (entries, trailer) = Self::xref_section(bytes, off)?;
            for (n, g, o) in entries {
                offsets.entry(n).or_insert((g, o));
            }
            next = match trailer.get(b"Prev") {
                Some(Obj::Int(p)) => {
                    Some(usize::try_from(*p).map_err(|_| PdfError::Structure("bad /Prev"))?)
                }
                None => None,
                _ => return Err(PdfError::Structure("bad /Prev")),
            };
            if newest_trailer.is_none() {
                newest_trailer = Some(trailer);
            }
        }
        Ok(PdfFile {
            bytes,
            offsets,
            trailer: newest_trailer.ok_or(PdfError::Structure("no trailer"))?,
            startxref,
        })
    }

    #[allow(clippy::type_complexity)]
    fn xref_section(bytes: &[u8], off: usize) -> Result<(Vec<(u32, u16, usize)>, Dict), PdfError> {
        let mut lx = Lexer::new(bytes, off);
        lx.skip_ws();
        if !bytes[lx.pos..].starts_with(b"xref") {
            return Err(PdfError::Unsupported("cross-reference stream"));
        }
        lx.pos += 4;
        let mut entries = Vec::new();
        loop {
            lx.skip_ws();
            if bytes[lx.pos..].starts_with(b"trailer") {
                lx.pos += 7;
                break;
            }
            let first = lx.uint()?;
            let count = lx.uint()?;
            // Untrusted counts: an overflowing sum is as invalid as a too large one.
            if first
                .checked_add(count)
                .is_none_or(|end| end > u64::from(MAX_OBJ_NUM))
            {
                return Err(PdfError::Structure("xref too large"));
            }
            for i in 0..count {
                let o = lx.uint()?;
                let g = lx.uint()?;
                lx.skip_ws();
                let kind = lx.keyword();
                let n = (first + i) as u32;
                match kind {
                    b"n" => {
                        let o = usize::try_from(o).map_err(|_| PdfError::Syntax(lx.pos))?;
                        let g = u16::try_from(g).map_err(|_| PdfError::Syntax(lx.pos))?;
                        entries.push((n, g, o));
                    }
                    b"f" => {}
                    _ => return lx.err(),
                }
            }
        }
        match lx.object(0)? {
            Obj::Dict(d) => Ok((entries, d)),
            _ => Err(PdfError::Structure("trailer is not a dictionary")),
        }
    }

    /// Reads object `n` (newest revision). Streams return their dictionary.
    pub fn object(&self, n: u32) -> Result<Obj, PdfError> {
        let &(g, off) = self
            .offsets
            .get(&n)
            .ok_or(PdfError::Structure("dangling reference"))?;
        if off >= self.bytes.len() {
            return Err(PdfError::Structure("object offset out of range"));
        }
        let mut lx = Lexer::new(self.bytes, off);
        let num = lx.uint()?;
        let gen_ = lx.uint()?;
        if num != u64::from(n) || gen_ != u64::from(g) {
            return Err(PdfError::Structure("xref points at the wrong object"));
        }
        lx.expect_keyword(b"obj")?;
        lx.object(0)
    }

    /// Resolves a reference (one level); other objects are returned as they are.
    pub fn resolve(&self, o: &Obj) -> Result<Obj, PdfError> {
        match o {
            Obj::Ref(n, _) => self.object(*n),
            other => Ok(other.clone()),
        }
    }

    /// Object number and dictionary of the catalog.
    pub fn catalog(&self) -> Result<(u32, Dict), PdfError> {
        let Some(Obj::Ref(n, _)) = self.trailer.get(b"Root") else {
            return Err(PdfError::Structure("no /Root"));
        };
        match self.object(*n)? {
            Obj::Dict(d) => Ok((*n, d)),
            _ => Err(PdfError::Structure("catalog is not a dictionary")),
        }
    }

    /// The pages in order: (object number, page dictionary).
    pub fn pages(&self) -> Result<Vec<(u32, Dict)>, PdfError> {
        let (_, cat) = self.catalog()?;
        let Some(Obj::Ref(root, _)) = cat.get(b"Pages") else {
            return Err(PdfError::Structure("no /Pages"));
        };
        let mut out = Vec::new();
        let mut visited = HashSet::new();
        self.walk(*root, 0, &mut visited, &mut out)?;
        Ok(out)
    }

    fn walk(
        &self,
        n: u32,
        depth: usize,
        visited: &mut HashSet<u32>,
        out: &mut Vec<(u32, Dict)>,
    ) -> Result<(), PdfError> {
        if depth > MAX_DEPTH || !visited.insert(n) || out.len() > MAX_PAGES {
            return Err(PdfError::Structure("page tree loops or is too large"));
        }
        let Obj::Dict(d) = self.object(n)? else {
            return Err(PdfError::Structure("page tree node is not a dictionary"));
        };
        match d.get(b"Type") {
            Some(Obj::Name(t)) if t == b"Pages" => {
                let Some(Obj::Array(kids)) = d.get(b"Kids") else {
                    return Err(PdfError::Structure("no /Kids"));
                };
                for k in kids {
                    let Obj::Ref(kn, _) = k else {
                        return Err(PdfError::Structure("kid is not a reference"));
                    };
                    self.walk(*kn, depth + 1, visited, out)?;
                }
                Ok(())
            }
            Some(Obj::Name(t)) if t == b"Page" => {
                out.push((n, d));
                Ok(())
            }
            _ => Err(PdfError::Structure("page tree node without /Type")),
        }
    }

    /// Highest object number + 1 as declared by the trailer's /Size.
    pub fn size(&self) -> Result<u32, PdfError> {
        match self.trailer.get(b"Size") {
            Some(Obj::Int(s)) if *s > 0 && *s < i64::from(MAX_OBJ_NUM) => Ok(*s as u32),
            _ => Err(PdfError::Structure("bad /Size")),
        }
    }
}

/// Writes an incremental update: `objects` (number → serialised body) appended after the
/// original bytes with a cross-reference section and a trailer chaining to the previous one.
pub fn incremental_update(
    original: &[u8],
    file: &PdfFile<'_>,
    objects: &BTreeMap<u32, Vec<u8>>,
) -> Result<Vec<u8>, PdfError> {
    let mut out =
        Vec::with_capacity(original.len() + objects.values().map(Vec::len).sum::<usize>() + 1024);
    out.extend_from_slice(original);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut offs = BTreeMap::new();
    for (n, body) in objects {
        offs.insert(*n, out.len());
        out.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref_at = out.len();
    out.extend_from_slice(b"xref\n");
    // One subsection per run of consecutive numbers.
    let nums: Vec<u32> = offs.keys().copied().collect();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
            j += 1;
        }
        out.extend_from_slice(format!("{} {}\n", nums[i], j - i + 1).as_bytes());
        for n in &nums[i..=j] {
            out.extend_from_slice(format!("{:010} 00000 n \n", offs[n]).as_bytes());
        }
        i = j + 1;
    }
    let max = nums.last().copied().unwrap_or(0);
    let size = file.size()?.max(max + 1);
    let mut trailer = Dict::default();
    trailer.set(b"Size", Obj::Int(i64::from(size)));
    if let Some(r) = file.trailer.get(b"Root") {
        trailer.set(b"Root", r.clone());
    }
    if let Some(r) = file.trailer.get(b"Info") {
        trailer.set(b"Info", r.clone());
    }
    if let Some(r) = file.trailer.get(b"ID") {
        trailer.set(b"ID", r.clone());
    }
    trailer.set(b"Prev", Obj::Int(file.startxref as i64));
    out.extend_from_slice(b"trailer\n");
    Obj::Dict(trailer).write(&mut out);
    out.extend_from_slice(format!("\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xref_subsection_whose_bounds_overflow_is_an_error() {
        // Found by the fuzz smoke run (issuer_page_markers, now document_page_markers):
        // `first + count` overflowed u64.
        let pdf = b"%PDF-1.7\nxref\n18446744073709551615 2\n0000000000 65535 f \ntrailer\n<< /Size 1 >>\nstartxref\n9\n%%EOF\n";
        assert!(PdfFile::parse(pdf).is_err());
    }

    #[test]
    fn lexes_objects() {
        let src = b"<< /A 1 /B [2 0 R (x\\(y\\)) <41 42>] /C#20D -3.5 /E null >>";
        let o = Lexer::new(src, 0).object(0).unwrap();
        let d = o.as_dict().unwrap();
        assert_eq!(d.get(b"A"), Some(&Obj::Int(1)));
        assert_eq!(
            d.get(b"B"),
            Some(&Obj::Array(vec![
                Obj::Ref(2, 0),
                Obj::Str(b"x(y)".to_vec()),
                Obj::Str(b"AB".to_vec())
            ]))
        );
        assert_eq!(d.get(b"C D"), Some(&Obj::Real("-3.5".into())));
        let mut w = Vec::new();
        o.write(&mut w);
        let again = Lexer::new(&w, 0).object(0).unwrap();
        assert_eq!(again, o);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"%PDF-1.7\n",
            b"%PDF-1.7\nstartxref\n99999\n%%EOF",
            b"%PDF-1.7\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Prev 9 >>\nstartxref\n9\n%%EOF",
            b"%PDF-1.7\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        ] {
            assert!(PdfFile::parse(bad).and_then(|f| f.pages()).is_err());
        }
        let deep = vec![b'['; 10_000];
        assert!(Lexer::new(&deep, 0).object(0).is_err());
    }
}
