//! The checks of a loaded configuration's values, every problem reported together.

use super::{Config, ConfigError};

impl Config {
    fn validate_limits(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if self.max_connections == Some(0) {
            invalid("max_connections", "at least 1");
        }
        for (field, value) in [
            ("max_handshakes_per_ip", self.max_handshakes_per_ip),
            (
                "max_terminal_calls_in_flight",
                self.max_terminal_calls_in_flight,
            ),
            (
                "max_verify_calls_in_flight",
                self.max_verify_calls_in_flight,
            ),
            ("max_anonymous_connections", self.max_anonymous_connections),
            (
                "max_anonymous_connections_per_ip",
                self.max_anonymous_connections_per_ip,
            ),
        ] {
            if value == 0 {
                invalid(field, "at least 1");
            }
        }
        if self.max_anonymous_connections_per_ip > self.max_anonymous_connections {
            invalid(
                "max_anonymous_connections_per_ip",
                "at most max_anonymous_connections",
            );
        }
        if let Some(max) = self.max_connections
            && self.max_anonymous_connections >= max
        {
            invalid(
                "max_anonymous_connections",
                "below max_connections: the rest is kept for terminals",
            );
        }
        for (field, value) in [
            ("preface_timeout_ms", self.preface_timeout_ms),
            ("anonymous_idle_timeout_ms", self.anonymous_idle_timeout_ms),
            (
                "http2_keepalive_interval_ms",
                self.http2_keepalive_interval_ms,
            ),
            (
                "http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
            ),
            ("issue_stream_timeout_ms", self.issue_stream_timeout_ms),
        ] {
            if value == 0 {
                invalid(field, "at least 1 ms");
            }
        }
        if self.max_concurrent_streams == 0 {
            invalid("max_concurrent_streams", "at least 1");
        }
        if self.issue_stream_budget_per_terminal_bytes < 1 << 20 {
            invalid("issue_stream_budget_per_terminal_bytes", "at least 1 MiB");
        }
        if self.issue_stream_budget_per_terminal_bytes > self.issue_stream_budget_bytes {
            invalid(
                "issue_stream_budget_per_terminal_bytes",
                "at most issue_stream_budget_bytes",
            );
        }
    }

    /// Every value out of range, all reported together.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.validate_values(&mut problems);
        self.validate_routes(&mut problems);
        self.validate_limits(&mut problems);
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Several(problems)),
        }
    }

    fn validate_values(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if card::login::context_bytes(&self.gateway_id, "t", "s").is_none()
            || self.gateway_id.len() > 64
        {
            invalid("gateway_id", "1 to 64 characters, no newline");
        }
        for (field, url) in [
            ("database_url", &self.database_url),
            ("register_url", &self.register_url),
        ] {
            if let Some(url) = url
                && crate::store::Backend::of_url(url).is_err()
            {
                invalid(field, "must start with sqlite: or postgres:");
            }
        }
        if self.max_open_sessions_per_terminal == 0 {
            invalid(
                "max_open_sessions_per_terminal",
                "at least 1 (a terminal needs one session per resident at the kiosk)",
            );
        }
        for (field, value) in [
            ("reconcile_interval_secs", self.reconcile_interval_secs),
            ("crl_refresh_secs", self.crl_refresh_secs),
            ("print_window_secs", self.print_window_secs),
        ] {
            if value == 0 {
                invalid(field, "at least 1 second");
            }
        }
        if self.max_concurrent_issuances == 0 {
            invalid("max_concurrent_issuances", "at least 1");
        }
        if self.rehearsal_clock_start().is_err() {
            invalid("rehearsal_clock_start", "an RFC 3339 instant");
        }
    }

    /// The municipalities in process and the remote issuers.
    fn validate_routes(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if self.municipalities.is_empty() && self.remote_issuers.is_empty() {
            invalid(
                "municipalities",
                "at least one municipality, in process or in remote_issuers",
            );
        }
        if self
            .municipalities
            .iter()
            .any(|code| audit::event::MunicipalityCode::parse(code).is_err())
        {
            invalid("municipalities", "6-digit codes with a valid check digit");
        }
        let mut seen: Vec<&str> = self.municipalities.iter().map(String::as_str).collect();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            invalid("municipalities", "a code is listed twice");
        }
        for remote in &self.remote_issuers {
            if audit::event::MunicipalityCode::parse(&remote.municipality).is_err() {
                invalid(
                    "remote_issuers.municipality",
                    "6-digit codes with a valid check digit",
                );
            }
            if seen.contains(&remote.municipality.as_str()) {
                invalid(
                    "remote_issuers.municipality",
                    "a municipality is served either in process (municipalities) or by one \
                     remote issuer, not both; set municipalities = [] to serve none in process",
                );
            }
            seen.push(&remote.municipality);
            match remote.endpoint.parse::<tonic::codegen::http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
                _ => invalid(
                    "remote_issuers.endpoint",
                    "an https://host:port URL (the issuer is only reached over mutual TLS)",
                ),
            }
            if remote.server_name().is_empty() {
                invalid("remote_issuers.server_name", "a DNS name or address");
            }
        }
    }
}
