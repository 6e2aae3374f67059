//! Who is asking for a trial: the applicant fields of `POST /v1/trials/start`, parsed and
//! validated once at the edge, then carried as types.
//!
//! Invariant: an [`Applicant`] only exists if every field it holds passed the checks below, so
//! the store and the events never see an over-long, mistyped or control-character-laden value.
//! Cost: one pass over the body's object; nothing is allocated for absent fields.
//!
//! # Fields, their limits and Edge Impulse's names
//!
//! Our API is snake_case; the seed (`../shared/seeds/enterprise-trial-openapi.txt`, Edge Impulse's
//! `StartEnterpriseTrialRequest`) is camelCase. Only the snake_case names are read (see "Unknown
//! fields" below). Lengths are in characters (Unicode scalar values) unless marked bytes.
//!
//! | ours | Edge Impulse | type and limit |
//! |---|---|---|
//! | `email` | `email` | email syntax (below), at most 254 bytes (RFC 5321's path limit), local part at most 64 bytes |
//! | `name` | `name` | text, at most 200 |
//! | `organization_name` | `organizationName` | text, at most 200 |
//! | `use_case` | `useCase` | text, at most 200 |
//! | `user_has_ml_models_in_production` | `userHasMLModelsInProduction` | exactly `yes`, `no` or `no, but we will soon` |
//! | `company_name` | `companyName` | text, at most 200 |
//! | `company_size` | `companySize` | text, at most 50 (a range such as `1-10`) |
//! | `country` | `country` | text, at most 100: free text as in the seed (its example is `United States`), not ISO 3166 |
//! | `state_or_province` | `stateOrProvince` | text, at most 100 |
//! | `redirect_url_origin` | `redirectUrlOrigin` | text, at most 300; whether it is an allowed origin is [`super::redirect`]'s call (`invalid_redirect_origin`) |
//! | `redirect_url_query_params` | `redirectUrlQueryParams` | a query **string** as in the seed (`utm_source=google&utm_medium=cpc`), at most 1024; one leading `?` is dropped |
//! | `metadata` | (none) | object of at most 20 string values; keys 1 to 40, values at most 500 |
//! | `client_ip` | (none) | an IPv4 or IPv6 address (`std::net` syntax); the caller passes its end user's address |
//! | `device_id` | (none) | text, 1 to 200, the caller's device fingerprint |
//! | `expires_at` | `expirationDate` | admin only: RFC 3339 date-time, truncated to whole seconds |
//! | `notes` | `notes` | admin only: multi-line text, at most 2000 |
//!
//! Rules shared by every text field: JSON `null` and absence are the same; strings are trimmed
//! and an empty result counts as absent (web forms send `""` for a field left blank); control
//! characters are refused, except line breaks and tabs in the multi-line fields (`notes` and
//! metadata values). A value of the wrong JSON type is refused, never coerced.
//!
//! # Admin fields
//! `expires_at` and `notes` are read only for [`Privilege::Admin`]. For any other caller they are
//! ignored without being looked at, as the seed says ("This field is ignored if the trial is
//! requested by a non-admin user"): a non-admin's malformed `expires_at` is not an error. Whether
//! an admin's date is within the plan's maximum (422 `invalid_expiration`) needs the clock and the
//! plan, so the handler decides it.
//!
//! # Unknown fields
//! [`Applicant::parse`] reads only the fields it knows; the start handler refuses any other
//! (besides its `plan`) first, with 400 `invalid_field` naming it ([`unknown_field_message`],
//! issue 26): a field dropped without a word is data the client believes we keep. The seed's
//! camelCase names (`organizationName`, `redirectUrlOrigin`, ...) are refused the same way, with
//! a hint to use the snake_case name; Edge Impulse's own names are a later issue (27).
//!
//! # Personal data
//! `email`, `name`, `client_ip`, `device_id`, `notes` and metadata values are personal or free
//! text: `Debug` redacts them (also on [`Email`], [`ClientIp`] and [`DeviceId`] alone), and no
//! [`FieldError`] message ever quotes a value. [`Applicant::to_json`] holds the email (it is the
//! org's own data, returned to it) but never `client_ip` or `device_id`: those exist only as
//! HMACs ([`super::signals`]).
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::DateTime;
use serde_json::{Map, Value};

/// The API maps every [`FieldError`] to `400` with this code.
pub const INVALID_FIELD: &str = "invalid_field";

pub const MAX_EMAIL_BYTES: usize = 254;
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_ORGANIZATION_NAME_CHARS: usize = 200;
pub const MAX_USE_CASE_CHARS: usize = 200;
pub const MAX_COMPANY_NAME_CHARS: usize = 200;
pub const MAX_COMPANY_SIZE_CHARS: usize = 50;
pub const MAX_COUNTRY_CHARS: usize = 100;
pub const MAX_STATE_OR_PROVINCE_CHARS: usize = 100;
pub const MAX_REDIRECT_ORIGIN_CHARS: usize = 300;
pub const MAX_QUERY_PARAMS_CHARS: usize = 1024;
pub const MAX_METADATA_KEYS: usize = 20;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;
pub const MAX_DEVICE_ID_CHARS: usize = 200;
pub const MAX_NOTES_CHARS: usize = 2000;

/// Every field of the start body [`Applicant::parse`] reads, the admin-only ones included (a
/// standard key's `expires_at` and `notes` are known, and ignored).
pub const FIELDS: [&str; 16] = [
    "email",
    "name",
    "organization_name",
    "use_case",
    "user_has_ml_models_in_production",
    "company_name",
    "company_size",
    "country",
    "state_or_province",
    "redirect_url_origin",
    "redirect_url_query_params",
    "metadata",
    "client_ip",
    "device_id",
    "expires_at",
    "notes",
];

/// The longest part of a client's field name an error message shows.
const MAX_SHOWN_FIELD_CHARS: usize = 40;

/// The message for a body field that no route knows, on every route: names the field (at most
/// 40 characters of it, never a value), with [`snake_case_hint`] for a camelCase name.
pub fn unknown_field_message(name: &str) -> String {
    let shown: String = name.chars().take(MAX_SHOWN_FIELD_CHARS).collect();
    format!("unknown field `{shown}`{}", snake_case_hint(name))
}

/// For a camelCase field name, `"; this API's names are snake_case: use `<name>`"`, else
/// empty. Edge Impulse's `expirationDate` is our `expires_at`; every other seed name is its
/// snake_case form (the table above).
pub fn snake_case_hint(name: &str) -> String {
    if name.chars().count() > MAX_SHOWN_FIELD_CHARS
        || !name.contains(|c: char| c.is_ascii_uppercase())
    {
        return String::new();
    }
    let snake = match name {
        "expirationDate" => "expires_at".to_owned(),
        _ => snake_case(name),
    };
    format!("; this API's names are snake_case: use `{snake}`")
}

/// `organizationName` -> `organization_name`, `userHasMLModelsInProduction` ->
/// `user_has_ml_models_in_production`: a word starts at an upper-case letter after a lower-case
/// one or a digit, and at the last capital of a run followed by a lower-case letter.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let before = chars[i - 1];
            let after = chars.get(i + 1).copied();
            let starts_word = before.is_ascii_lowercase()
                || before.is_ascii_digit()
                || (before.is_ascii_uppercase() && after.is_some_and(|a| a.is_ascii_lowercase()));
            if starts_word && before != '_' {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A field the client got wrong. `message` describes the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }

    /// The stable API code: always [`INVALID_FIELD`].
    pub fn code(&self) -> &'static str {
        INVALID_FIELD
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Whether the caller's key may set the admin-only fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Admin,
    Standard,
}

/// `user_has_ml_models_in_production`, the seed's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlModelsInProduction {
    Yes,
    No,
    NoButSoon,
}

impl MlModelsInProduction {
    pub const ALL: [MlModelsInProduction; 3] = [
        MlModelsInProduction::Yes,
        MlModelsInProduction::No,
        MlModelsInProduction::NoButSoon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MlModelsInProduction::Yes => "yes",
            MlModelsInProduction::No => "no",
            MlModelsInProduction::NoButSoon => "no, but we will soon",
        }
    }

    /// Exact and case-sensitive, as the seed's enum.
    pub fn parse(s: &str) -> Option<MlModelsInProduction> {
        MlModelsInProduction::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A syntactically plausible email address, as the client wrote it (trimmed; case kept).
/// `Debug` is redacted; read it with [`Email::as_str`].
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A practical check, not RFC 5322: exactly one `@`; a non-empty local part of at most 64
    /// bytes without spaces, control characters, the specials that would need quoting
    /// (`"(),:;<>[\]`), or a leading, trailing or doubled dot; a domain of at least two
    /// dot-separated labels of letters, digits and hyphens (Unicode letters allowed, for IDN),
    /// none empty, none starting or ending with `-`, none over 63 characters, and a last label
    /// that is not all digits (no bare IP addresses); at most 254 bytes in all.
    pub fn parse(s: &str) -> Result<Email, &'static str> {
        let s = s.trim();
        if s.len() > MAX_EMAIL_BYTES {
            return Err("must be at most 254 bytes");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters");
        }
        let (local, domain) = match s.split_once('@') {
            Some((l, d)) if !d.contains('@') => (l, d),
            _ => return Err("must contain exactly one @"),
        };
        if local.is_empty() {
            return Err("must have a local part before the @");
        }
        if local.len() > MAX_EMAIL_LOCAL_BYTES {
            return Err("local part must be at most 64 bytes");
        }
        if local.chars().any(|c| "\"(),:;<>[\\]".contains(c)) {
            return Err("local part contains a character that needs quoting");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("local part must not start or end with a dot or contain two in a row");
        }
        if !domain.contains('.') {
            return Err("domain must contain a dot");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        for label in &labels {
            let well_formed = !label.is_empty()
                && label.chars().count() <= 63
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !well_formed {
                return Err("domain must be dot-separated labels of letters, digits and hyphens");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err("domain must be a name, not an IP address");
        }
        Ok(Email(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, as written.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(l, _)| l)
    }

    /// The part after the `@`, as written.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// The end user's IP address, as the caller passed it. `Debug` is redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// `std::net` syntax after trimming: dotted-quad IPv4 or RFC 4291 IPv6 (no port, no zone).
    pub fn parse(s: &str) -> Option<ClientIp> {
        s.trim().parse().ok().map(ClientIp)
    }

    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIp(<redacted>)")
    }
}

/// The caller's device fingerprint: trimmed, 1 to 200 characters, no control characters, case
/// kept (fingerprints may be case-sensitive). `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(s: &str) -> Result<DeviceId, &'static str> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.chars().count() > MAX_DEVICE_ID_CHARS {
            return Err("must be at most 200 characters");
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(DeviceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceId(<redacted>)")
    }
}

/// The admin-only overrides; always empty for [`Privilege::Standard`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminFields {
    /// Epoch seconds (`expires_at`, Edge Impulse's `expirationDate`).
    pub expires_at: Option<i64>,
    pub notes: Option<String>,
}

/// Everything the start body says about who is trialling. See the module doc for each field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Applicant {
    pub email: Option<Email>,
    pub name: Option<String>,
    pub organization_name: Option<String>,
    pub use_case: Option<String>,
    pub user_has_ml_models_in_production: Option<MlModelsInProduction>,
    pub company_name: Option<String>,
    pub company_size: Option<String>,
    pub country: Option<String>,
    pub state_or_province: Option<String>,
    pub redirect_url_origin: Option<String>,
    pub redirect_url_query_params: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub client_ip: Option<ClientIp>,
    pub device_id: Option<DeviceId>,
    pub admin: AdminFields,
}

/// Single-line text: no control characters at all. Multi-line: line breaks and tabs allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    Single,
    Multi,
}

fn has_forbidden_control(s: &str, lines: Lines) -> bool {
    let allowed = |c: char| lines == Lines::Multi && matches!(c, '\n' | '\r' | '\t');
    s.chars().any(|c| c.is_control() && !allowed(c))
}

fn check_text(
    field: &'static str,
    s: &str,
    max_chars: usize,
    lines: Lines,
) -> Result<(), FieldError> {
    if s.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if has_forbidden_control(s, lines) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The trimmed string value of `field`, `None` when absent, null or blank.
fn string_field<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then_some(s))
        }
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

fn text_field(
    body: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
    lines: Lines,
) -> Result<Option<String>, FieldError> {
    let Some(s) = string_field(body, field)? else {
        return Ok(None);
    };
    check_text(field, s, max_chars, lines)?;
    Ok(Some(s.to_owned()))
}

fn metadata_field(body: &Map<String, Value>) -> Result<BTreeMap<String, String>, FieldError> {
    const FIELD: &str = "metadata";
    let object = match body.get(FIELD) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(FieldError::new(FIELD, "must be an object")),
    };
    if object.len() > MAX_METADATA_KEYS {
        return Err(FieldError::new(
            FIELD,
            format!("must have at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in object {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_METADATA_KEY_CHARS {
            return Err(FieldError::new(
                FIELD,
                format!("keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(FieldError::new(
                FIELD,
                "keys must not contain control characters",
            ));
        }
        let Value::String(value) = value else {
            return Err(FieldError::new(FIELD, "values must be strings"));
        };
        // Values are kept as sent (not trimmed): metadata is the caller's opaque data.
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(FieldError::new(
                FIELD,
                format!("values must be at most {MAX_METADATA_VALUE_CHARS} characters"),
            ));
        }
        if has_forbidden_control(value, Lines::Multi) {
            return Err(FieldError::new(
                FIELD,
                "values must not contain control characters other than line breaks and tabs",
            ));
        }
        metadata.insert(key.clone(), value.clone());
    }
    Ok(metadata)
}

fn admin_fields(body: &Map<String, Value>) -> Result<AdminFields, FieldError> {
    let expires_at = match string_field(body, "expires_at")? {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    FieldError::new(
                        "expires_at",
                        "must be an RFC 3339 date-time such as 2026-05-01T00:00:00Z",
                    )
                })?
                .timestamp(),
        ),
    };
    Ok(AdminFields {
        expires_at,
        notes: text_field(body, "notes", MAX_NOTES_CHARS, Lines::Multi)?,
    })
}

impl Applicant {
    /// Reads the applicant fields of a start body. The first bad field is the error; nothing
    /// else in the body is looked at (see "Unknown fields" in the module doc).
    pub fn parse(body: &Map<String, Value>, privilege: Privilege) -> Result<Applicant, FieldError> {
        let single = |field, max| text_field(body, field, max, Lines::Single);
        let email = match string_field(body, "email")? {
            None => None,
            Some(s) => Some(Email::parse(s).map_err(|why| FieldError::new("email", why))?),
        };
        let user_has_ml_models_in_production =
            match string_field(body, "user_has_ml_models_in_production")? {
                None => None,
                Some(s) => Some(MlModelsInProduction::parse(s).ok_or_else(|| {
                    FieldError::new(
                        "user_has_ml_models_in_production",
                        r#"must be one of "yes", "no", "no, but we will soon""#,
                    )
                })?),
            };
        let redirect_url_query_params =
            match single("redirect_url_query_params", MAX_QUERY_PARAMS_CHARS)? {
                None => None,
                Some(s) => {
                    let s = s.strip_prefix('?').unwrap_or(&s).to_owned();
                    (!s.is_empty()).then_some(s)
                }
            };
        let client_ip =
            match string_field(body, "client_ip")? {
                None => None,
                Some(s) => Some(ClientIp::parse(s).ok_or_else(|| {
                    FieldError::new("client_ip", "must be an IPv4 or IPv6 address")
                })?),
            };
        let device_id = match string_field(body, "device_id")? {
            None => None,
            Some(s) => Some(DeviceId::parse(s).map_err(|why| FieldError::new("device_id", why))?),
        };
        let admin = match privilege {
            Privilege::Admin => admin_fields(body)?,
            Privilege::Standard => AdminFields::default(),
        };
        Ok(Applicant {
            email,
            name: single("name", MAX_NAME_CHARS)?,
            organization_name: single("organization_name", MAX_ORGANIZATION_NAME_CHARS)?,
            use_case: single("use_case", MAX_USE_CASE_CHARS)?,
            user_has_ml_models_in_production,
            company_name: single("company_name", MAX_COMPANY_NAME_CHARS)?,
            company_size: single("company_size", MAX_COMPANY_SIZE_CHARS)?,
            country: single("country", MAX_COUNTRY_CHARS)?,
            state_or_province: single("state_or_province", MAX_STATE_OR_PROVINCE_CHARS)?,
            redirect_url_origin: single("redirect_url_origin", MAX_REDIRECT_ORIGIN_CHARS)?,
            redirect_url_query_params,
            metadata: metadata_field(body)?,
            client_ip,
            device_id,
            admin,
        })
    }

    /// The applicant as stored on the trial, returned by `GET` and carried in `trial.started`:
    /// the present fields under their snake_case names (absent ones and empty metadata are
    /// left out). Never `client_ip` or `device_id` (they live only as signal HMACs), nor the
    /// admin fields (the handler applies `expires_at` to the trial and stores `notes` beside it,
    /// so a later `PATCH` has one place to change). Parsing this output again with
    /// [`Privilege::Standard`] gives back the same applicant minus those fields.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                out.insert(key.to_owned(), Value::String(v.to_owned()));
            }
        };
        put("email", self.email.as_ref().map(Email::as_str));
        put("name", self.name.as_deref());
        put("organization_name", self.organization_name.as_deref());
        put("use_case", self.use_case.as_deref());
        put(
            "user_has_ml_models_in_production",
            self.user_has_ml_models_in_production
                .map(MlModelsInProduction::as_str),
        );
        put("company_name", self.company_name.as_deref());
        put("company_size", self.company_size.as_deref());
        put("country", self.country.as_deref());
        put("state_or_province", self.state_or_province.as_deref());
        put("redirect_url_origin", self.redirect_url_origin.as_deref());
        put(
            "redirect_url_query_params",
            self.redirect_url_query_params.as_deref(),
        );
        if !self.metadata.is_empty() {
            let metadata = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            out.insert("metadata".to_owned(), Value::Object(metadata));
        }
        Value::Object(out)
    }
}

/// Shows which personal fields are present, never their values.
fn redacted<T>(value: &Option<T>) -> Option<&'static str> {
    value.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for AdminFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminFields")
            .field("expires_at", &self.expires_at)
            .field("notes", &redacted(&self.notes))
            .finish()
    }
}

impl fmt::Debug for Applicant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applicant")
            .field("email", &redacted(&self.email))
            .field("name", &redacted(&self.name))
            .field("organization_name", &self.organization_name)
            .field("use_case", &self.use_case)
            .field(
                "user_has_ml_models_in_production",
                &self.user_has_ml_models_in_production,
            )
            .field("company_name", &self.company_name)
            .field("company_size", &self.company_size)
            .field("country", &self.country)
            .field("state_or_province", &self.state_or_province)
            .field("redirect_url_origin", &self.redirect_url_origin)
            .field("redirect_url_query_params", &self.redirect_url_query_params)
            .field("metadata_keys", &self.metadata.keys().collect::<Vec<_>>())
            .field("client_ip", &redacted(&self.client_ip))
            .field("device_id", &redacted(&self.device_id))
            .field("admin", &self.admin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test body must be an object"),
        }
    }

    fn parse(v: Value) -> Result<Applicant, FieldError> {
        Applicant::parse(&body(v), Privilege::Standard)
    }

    fn field_of(v: Value) -> &'static str {
        parse(v).expect_err("expected a field error").field
    }

    fn full() -> Value {
        json!({
            "plan": "growth",
            "email": " Fred.Flintstone+trial@Flintstones.org ",
            "name": "Fred Flintstone",
            "organization_name": "My Company",
            "use_case": "Industrial",
            "user_has_ml_models_in_production": "no, but we will soon",
            "company_name": "ACME Inc.",
            "company_size": "1-10",
            "country": "United States",
            "state_or_province": "California",
            "redirect_url_origin": "https://studio.example.com",
            "redirect_url_query_params": "utm_source=google&utm_medium=cpc",
            "metadata": {"crm_id": "42", "note": "line one\nline two"},
            "client_ip": "203.0.113.7",
            "device_id": " dev-123 ",
        })
    }

    #[test]
    fn parses_every_field_of_a_full_body() {
        let a = parse(full()).unwrap();
        assert_eq!(
            a.email.as_ref().unwrap().as_str(),
            "Fred.Flintstone+trial@Flintstones.org"
        );
        assert_eq!(a.name.as_deref(), Some("Fred Flintstone"));
        assert_eq!(a.organization_name.as_deref(), Some("My Company"));
        assert_eq!(a.use_case.as_deref(), Some("Industrial"));
        assert_eq!(
            a.user_has_ml_models_in_production,
            Some(MlModelsInProduction::NoButSoon)
        );
        assert_eq!(a.company_name.as_deref(), Some("ACME Inc."));
        assert_eq!(a.company_size.as_deref(), Some("1-10"));
        assert_eq!(a.country.as_deref(), Some("United States"));
        assert_eq!(a.state_or_province.as_deref(), Some("California"));
        assert_eq!(
            a.redirect_url_origin.as_deref(),
            Some("https://studio.example.com")
        );
        assert_eq!(
            a.redirect_url_query_params.as_deref(),
            Some("utm_source=google&utm_medium=cpc")
        );
        assert_eq!(a.metadata.len(), 2);
        assert_eq!(a.metadata["note"], "line one\nline two");
        assert_eq!(
            a.client_ip.unwrap().ip(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(a.device_id.as_ref().unwrap().as_str(), "dev-123");
        assert_eq!(a.admin, AdminFields::default());
    }

    #[test]
    fn an_empty_body_is_an_empty_applicant_and_null_or_blank_means_absent() {
        assert_eq!(parse(json!({})).unwrap(), Applicant::default());
        let a = parse(json!({"email": null, "name": "   ", "metadata": null, "client_ip": ""}))
            .unwrap();
        assert_eq!(a, Applicant::default());
    }

    #[test]
    fn camel_case_names_get_their_snake_case_name_as_a_hint() {
        for (camel, snake) in [
            ("organizationName", "organization_name"),
            ("redirectUrl", "redirect_url"),
            ("firstName", "first_name"),
            (
                "userHasMLModelsInProduction",
                "user_has_ml_models_in_production",
            ),
            ("stateOrProvince", "state_or_province"),
            ("expirationDate", "expires_at"),
        ] {
            let message = unknown_field_message(camel);
            assert!(
                message.starts_with(&format!("unknown field `{camel}`")),
                "{message}"
            );
            assert!(message.ends_with(&format!("use `{snake}`")), "{message}");
        }
        assert_eq!(unknown_field_message("nope"), "unknown field `nope`");
        let long = "a".repeat(50);
        assert_eq!(
            unknown_field_message(&long),
            format!("unknown field `{}`", "a".repeat(40))
        );
        // Every field the start body knows is snake_case already.
        assert!(FIELDS.iter().all(|f| snake_case_hint(f).is_empty()));
    }

    #[test]
    fn unknown_fields_are_ignored_including_the_seeds_camel_case() {
        let a = parse(json!({"organizationName": "x", "whatever": [1, 2], "plan": 7})).unwrap();
        assert_eq!(a, Applicant::default());
    }

    #[test]
    fn every_field_refuses_the_wrong_json_type() {
        // Every field but the admin-only ones, which a standard key's parse does not look at.
        for field in FIELDS
            .into_iter()
            .filter(|f| !["expires_at", "notes"].contains(f))
        {
            for bad in [json!(1), json!(true), json!(["x"])] {
                let err = parse(json!({ field: bad })).unwrap_err();
                assert_eq!(err.field, field);
                assert_eq!(err.code(), "invalid_field");
            }
        }
        assert_eq!(field_of(json!({"email": {"a": 1}})), "email");
        assert_eq!(field_of(json!({"metadata": "x"})), "metadata");
    }

    #[test]
    fn each_text_field_has_its_documented_limit() {
        for (field, max) in [
            ("name", MAX_NAME_CHARS),
            ("organization_name", MAX_ORGANIZATION_NAME_CHARS),
            ("use_case", MAX_USE_CASE_CHARS),
            ("company_name", MAX_COMPANY_NAME_CHARS),
            ("company_size", MAX_COMPANY_SIZE_CHARS),
            ("country", MAX_COUNTRY_CHARS),
            ("state_or_province", MAX_STATE_OR_PROVINCE_CHARS),
            ("redirect_url_origin", MAX_REDIRECT_ORIGIN_CHARS),
            ("redirect_url_query_params", MAX_QUERY_PARAMS_CHARS),
            ("device_id", MAX_DEVICE_ID_CHARS),
        ] {
            // Multi-byte characters count once: the limit is in characters, not bytes.
            assert!(parse(json!({ field: "é".repeat(max) })).is_ok(), "{field}");
            let err = parse(json!({ field: "é".repeat(max + 1) })).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.message.contains(&max.to_string()), "{err}");
        }
    }

    #[test]
    fn single_line_fields_refuse_control_characters() {
        for field in ["name", "company_name", "country", "device_id"] {
            for bad in ["a\nb", "a\u{0}b", "a\tb", "a\u{7f}b"] {
                assert_eq!(field_of(json!({ field: bad })), field, "{field} {bad:?}");
            }
        }
    }

    #[test]
    fn email_syntax_is_checked_practically() {
        for ok in [
            "a@b.co",
            "fred.flintstone+trial@flintstones.org",
            "o'brien@example.ie",
            "user@sub.domain-with-hyphen.example",
            "user@bücher.de",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}com", "b.".repeat(130));
        for bad in [
            "plainaddress",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@localhost",
            "a@example.",
            "a@.example.com",
            "a@example..com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@192.168.0.1",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a<b@example.com",
            "\"a\"@example.com",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
            assert_eq!(field_of(json!({ "email": bad })), "email", "{bad:?}");
        }
        // Surrounding whitespace (a trailing newline from a form) is trimmed, inner is not.
        assert_eq!(
            Email::parse(" a@example.com\n").unwrap().as_str(),
            "a@example.com"
        );
        assert_eq!(
            Email::parse("a@b.co\u{0}m").unwrap_err(),
            "must not contain spaces or control characters"
        );
        let e = Email::parse("Fred@Example.COM").unwrap();
        assert_eq!((e.local_part(), e.domain()), ("Fred", "Example.COM"));
    }

    #[test]
    fn ml_models_enum_takes_exactly_the_seeds_three_values() {
        for v in MlModelsInProduction::ALL {
            let a = parse(json!({"user_has_ml_models_in_production": v.as_str()})).unwrap();
            assert_eq!(a.user_has_ml_models_in_production, Some(v));
        }
        for bad in [
            "Yes",
            "NO",
            "maybe",
            "no, but we will soon.",
            "no but we will soon",
        ] {
            assert_eq!(
                field_of(json!({"user_has_ml_models_in_production": bad})),
                "user_has_ml_models_in_production"
            );
        }
    }

    #[test]
    fn metadata_limits() {
        let twenty: Map<String, Value> = (0..20).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            parse(json!({"metadata": twenty})).unwrap().metadata.len(),
            20
        );
        let twenty_one: Map<String, Value> =
            (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
        let err = parse(json!({"metadata": twenty_one})).unwrap_err();
        assert_eq!(
            (err.field, err.message.as_str()),
            ("metadata", "must have at most 20 keys")
        );

        let key40 = "k".repeat(40);
        assert!(parse(json!({"metadata": { key40: "v" }})).is_ok());
        for bad in [
            json!({ "k".repeat(41): "v" }),
            json!({ "": "v" }),
            json!({ "a\nb": "v" }),
            json!({ "k": "v".repeat(501) }),
            json!({ "k": 1 }),
            json!({ "k": null }),
            json!({ "k": {"nested": "x"} }),
            json!({ "k": "a\u{1}b" }),
        ] {
            assert_eq!(field_of(json!({ "metadata": bad })), "metadata");
        }
        let a = parse(json!({"metadata": {"k": "v".repeat(500), "empty": ""}})).unwrap();
        assert_eq!(a.metadata["empty"], "");
    }

    #[test]
    fn client_ip_and_device_id_are_checked() {
        for ok in ["203.0.113.7", " 2001:db8::1 ", "::ffff:192.0.2.1"] {
            assert!(parse(json!({ "client_ip": ok }))
                .unwrap()
                .client_ip
                .is_some());
        }
        for bad in [
            "203.0.113",
            "203.0.113.256",
            "203.0.113.7:443",
            "fe80::1%eth0",
            "example.com",
            "[2001:db8::1]",
        ] {
            assert_eq!(field_of(json!({ "client_ip": bad })), "client_ip", "{bad}");
        }
        assert_eq!(field_of(json!({"device_id": "a\u{0}"})), "device_id");
    }

    #[test]
    fn redirect_query_params_are_the_seeds_string_with_an_optional_question_mark() {
        let a = parse(json!({"redirect_url_query_params": "?a=1&b=2"})).unwrap();
        assert_eq!(a.redirect_url_query_params.as_deref(), Some("a=1&b=2"));
        let a = parse(json!({"redirect_url_query_params": "?"})).unwrap();
        assert_eq!(a.redirect_url_query_params, None);
        assert_eq!(
            field_of(json!({"redirect_url_query_params": {"a": "1"}})),
            "redirect_url_query_params"
        );
    }

    #[test]
    fn admin_fields_are_read_for_admins_only() {
        let v =
            json!({"expires_at": "2026-05-01T12:00:00.900+02:00", "notes": "call Fred\nTuesday"});
        let admin = Applicant::parse(&body(v.clone()), Privilege::Admin).unwrap();
        assert_eq!(admin.admin.expires_at, Some(1_777_629_600));
        assert_eq!(admin.admin.notes.as_deref(), Some("call Fred\nTuesday"));
        let standard = Applicant::parse(&body(v), Privilege::Standard).unwrap();
        assert_eq!(standard.admin, AdminFields::default());

        // Ignored means not looked at: a non-admin's malformed value is no error.
        let bad = json!({"expires_at": "tomorrow", "notes": 5});
        assert!(Applicant::parse(&body(bad.clone()), Privilege::Standard).is_ok());
        let err = Applicant::parse(&body(bad), Privilege::Admin).unwrap_err();
        assert_eq!(err.field, "expires_at");
        for bad in [
            json!({"expires_at": "2026-05-01"}),
            json!({"expires_at": 1_777_629_600}),
        ] {
            let err = Applicant::parse(&body(bad), Privilege::Admin).unwrap_err();
            assert_eq!(err.field, "expires_at");
        }
        let long = json!({"notes": "n".repeat(MAX_NOTES_CHARS + 1)});
        assert_eq!(
            Applicant::parse(&body(long), Privilege::Admin)
                .unwrap_err()
                .field,
            "notes"
        );
        let nul = json!({"notes": "a\u{0}b"});
        assert_eq!(
            Applicant::parse(&body(nul), Privilege::Admin)
                .unwrap_err()
                .field,
            "notes"
        );
    }

    #[test]
    fn to_json_round_trips_and_never_holds_ip_device_or_admin_fields() {
        let mut with_admin = full();
        with_admin["notes"] = json!("secret note");
        with_admin["expires_at"] = json!("2026-05-01T00:00:00Z");
        let a = Applicant::parse(&body(with_admin), Privilege::Admin).unwrap();
        let stored = a.to_json();
        let text = stored.to_string();
        for absent in [
            "client_ip",
            "203.0.113",
            "device_id",
            "dev-123",
            "notes",
            "expires_at",
            "plan",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(stored["email"], "Fred.Flintstone+trial@Flintstones.org");
        assert_eq!(
            stored["user_has_ml_models_in_production"],
            "no, but we will soon"
        );
        assert_eq!(stored["metadata"]["crm_id"], "42");

        let again = Applicant::parse(stored.as_object().unwrap(), Privilege::Standard).unwrap();
        let expected = Applicant {
            client_ip: None,
            device_id: None,
            admin: AdminFields::default(),
            ..a
        };
        assert_eq!(again, expected);
        assert_eq!(Applicant::default().to_json(), json!({}));
    }

    #[test]
    fn debug_never_shows_personal_values() {
        let mut v = full();
        v["notes"] = json!("private note");
        let a = Applicant::parse(&body(v), Privilege::Admin).unwrap();
        let shown = format!("{a:?} {:?} {:?} {:?}", a.email, a.client_ip, a.device_id);
        for secret in [
            "Flintstone+trial",
            "Flintstones.org",
            "Fred",
            "203.0.113",
            "dev-123",
            "private note",
            "line one",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("ACME Inc."),
            "non-personal fields stay readable: {shown}"
        );
        assert!(shown.contains("crm_id"));
    }

    #[test]
    fn errors_never_quote_the_value() {
        for v in [
            json!({"email": "leak-me-not@nowhere"}),
            json!({"client_ip": "leak-me-not"}),
            json!({"user_has_ml_models_in_production": "leak-me-not"}),
            json!({"name": format!("leak-me-not{}", "x".repeat(300))}),
        ] {
            let err = parse(v).unwrap_err();
            assert!(!err.to_string().contains("leak-me-not"), "{err}");
        }
    }
}
