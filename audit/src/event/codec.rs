//! The canonical encoding of an [`Event`], version 1 (the format is in the parent module's
//! documentation): the encoder, and the strict decoder that accepts only what the encoder
//! writes.

use super::{
    Actor, ActorKind, ENCODING_VERSION, Event, EventError, EventType, Fact, Ident, MAX_ENCODED_LEN,
    Pseudonym, ReasonCode, UnixMillis, invalid, municipality_code,
};

impl Event {
    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Result<Vec<u8>, EventError> {
        let mut out = vec![ENCODING_VERSION];
        field(&mut out, 0x01, &self.time.0.to_be_bytes());
        field(&mut out, 0x02, self.event_type.as_str().as_bytes());
        field(&mut out, 0x03, self.actor.kind().as_str().as_bytes());
        field(&mut out, 0x04, self.actor.id().as_bytes());
        if let Some(v) = &self.terminal {
            field(&mut out, 0x05, v.0.as_bytes());
        }
        if let Some(v) = &self.municipality {
            field(&mut out, 0x06, v.as_str().as_bytes());
        }
        if let Some(v) = &self.session {
            field(&mut out, 0x07, v.0.as_bytes());
        }
        if let Some(v) = &self.issuance {
            field(&mut out, 0x08, v.0.as_bytes());
        }
        if let Some(v) = &self.resident {
            field(&mut out, 0x09, &v.0);
        }
        if let Some(v) = &self.reason {
            field(&mut out, 0x0A, v.0.as_bytes());
        }
        if !self.facts.is_empty() {
            let mut attrs = Vec::new();
            for (k, f) in &self.facts {
                let v = f.value();
                // Keys are short constants and values are bounded by their types.
                attrs.extend_from_slice(&(k.len() as u16).to_be_bytes());
                attrs.extend_from_slice(k.as_bytes());
                attrs.extend_from_slice(&(v.len() as u32).to_be_bytes());
                attrs.extend_from_slice(v.as_bytes());
            }
            field(&mut out, 0x0B, &attrs);
        }
        if out.len() > MAX_ENCODED_LEN {
            return Err(invalid("event", "encoding longer than 65535 bytes"));
        }
        Ok(out)
    }

    /// Decodes and validates a canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(EventError::Malformed("longer than 65535 bytes"));
        }
        let (&version, mut rest) = bytes.split_first().ok_or(EventError::Malformed("empty"))?;
        if version != ENCODING_VERSION {
            return Err(EventError::Version(version));
        }
        let mut fields: Vec<(u8, &[u8])> = Vec::new();
        while !rest.is_empty() {
            let (tag, value, tail) = take_field(rest)?;
            if fields.last().is_some_and(|(t, _)| *t >= tag) {
                return Err(EventError::Malformed("tags out of order"));
            }
            fields.push((tag, value));
            rest = tail;
        }
        let get = |t: u8| fields.iter().find(|(tag, _)| *tag == t).map(|(_, v)| *v);
        let text = |t: u8, name: &'static str| -> Result<Option<&str>, EventError> {
            get(t)
                .map(|v| std::str::from_utf8(v).map_err(|_| invalid(name, "not UTF-8")))
                .transpose()
        };
        if let Some((tag, _)) = fields.iter().find(|(t, _)| *t == 0 || *t > 0x0B) {
            let _ = tag;
            return Err(EventError::Malformed("unknown tag"));
        }
        let time_bytes: [u8; 8] = get(0x01)
            .ok_or(EventError::Malformed("time missing"))?
            .try_into()
            .map_err(|_| EventError::Malformed("time must be 8 bytes"))?;
        let event_type = EventType::parse(
            text(0x02, "event type")?.ok_or(EventError::Malformed("type missing"))?,
        )?;
        let kind = ActorKind::parse(
            text(0x03, "actor kind")?.ok_or(EventError::Malformed("actor kind missing"))?,
        )?;
        let actor = Actor::parse(
            kind,
            text(0x04, "actor id")?.ok_or(EventError::Malformed("actor id missing"))?,
        )?;
        let mut event = Event::new(
            UnixMillis(i64::from_be_bytes(time_bytes)),
            event_type,
            actor,
        );
        event.terminal = text(0x05, "terminal")?.map(Ident::parse).transpose()?;
        event.municipality = text(0x06, "municipality")?
            .map(municipality_code)
            .transpose()?;
        event.session = text(0x07, "session")?.map(Ident::parse).transpose()?;
        event.issuance = text(0x08, "issuance")?.map(Ident::parse).transpose()?;
        event.resident = match get(0x09) {
            None => None,
            Some(v) => {
                Some(Pseudonym(v.try_into().map_err(|_| {
                    EventError::Malformed("pseudonym must be 32 bytes")
                })?))
            }
        };
        event.reason = text(0x0A, "reason")?.map(ReasonCode::parse).transpose()?;
        if let Some(mut attrs) = get(0x0B) {
            if attrs.is_empty() {
                return Err(EventError::Malformed("empty attributes"));
            }
            let mut last: Option<&str> = None;
            while !attrs.is_empty() {
                let (k, tail) = take_len(attrs, 2)?;
                let (v, tail) = take_len(tail, 4)?;
                attrs = tail;
                let k =
                    std::str::from_utf8(k).map_err(|_| invalid("attribute", "key not UTF-8"))?;
                let v =
                    std::str::from_utf8(v).map_err(|_| invalid("attribute", "value not UTF-8"))?;
                if last.is_some_and(|l| l >= k) {
                    return Err(EventError::Malformed("attribute keys out of order"));
                }
                last = Some(k);
                let fact = Fact::parse(k, v)?;
                event.facts.insert(fact.key(), fact);
            }
        }
        // A resident actor always names itself as the resident; anything else is not canonical.
        if let Actor::Resident(p) = &event.actor
            && event.resident != Some(*p)
        {
            return Err(EventError::Malformed(
                "resident actor without matching pseudonym",
            ));
        }
        Ok(event)
    }
}

fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    // Bounded: the whole encoding is checked against 65,535 bytes afterwards.
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

fn take_field(b: &[u8]) -> Result<(u8, &[u8], &[u8]), EventError> {
    let (&tag, rest) = b
        .split_first()
        .ok_or(EventError::Malformed("truncated tag"))?;
    let (value, rest) = take_len(rest, 4)?;
    if value.is_empty() {
        return Err(EventError::Malformed("empty field"));
    }
    Ok((tag, value, rest))
}

fn take_len(b: &[u8], width: usize) -> Result<(&[u8], &[u8]), EventError> {
    if b.len() < width {
        return Err(EventError::Malformed("truncated length"));
    }
    let (len_bytes, rest) = b.split_at(width);
    let len = len_bytes
        .iter()
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
    if rest.len() < len {
        return Err(EventError::Malformed("truncated value"));
    }
    Ok(rest.split_at(len))
}
