//! Bulk onboarding as pure steps: parse and validate an import CSV into candidate devices and a
//! per-row report, and write the device export CSV. The store does the database half (duplicate
//! checks against existing devices, batched inserts).
//!
//! Import header: `endpoint,serial,model,tags,psk_identity,psk_key_hex[,customer]
//! [,bootstrap_psk_identity,bootstrap_psk_key_hex]`, columns found by name (any order); only
//! endpoint, serial and model are required. Tags are `k=v;k2=v2`. The two bootstrap columns give
//! a meter its factory bootstrap credentials (both or neither per row); PSK identities of both
//! kinds share one namespace, in the file and in the registry.
//! Unknown columns are ignored and listed in the report, so an export can be imported again.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::registry::{
    Device, MAX_NAME_LEN, NewDevice, SecurityMode, ValidationError, format_tags, parse_tags,
    validate_endpoint, validate_psk_identity, validate_text,
};
use super::secrets::{PskKey, SecretError};

/// Upper bound on rows in one import, to bound memory (a 1M-row report is ~100 MB).
pub const MAX_IMPORT_ROWS: usize = 1_000_000;

const REQUIRED_COLUMNS: [&str; 3] = ["endpoint", "serial", "model"];
const OPTIONAL_COLUMNS: [&str; 6] = [
    "tags",
    "psk_identity",
    "psk_key_hex",
    "customer",
    "bootstrap_psk_identity",
    "bootstrap_psk_key_hex",
];

/// The export header. No key column: keys never leave the server this way.
pub const EXPORT_HEADER: [&str; 12] = [
    "endpoint",
    "serial",
    "model",
    "tags",
    "psk_identity",
    "customer",
    "security_mode",
    "state",
    "firmware_version",
    "connectivity",
    "last_seen",
    "created_at",
];

/// Why a whole import was refused before any row was looked at.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "the CSV header lacks the column(s) {0:?} (expected endpoint,serial,model,tags,psk_identity,psk_key_hex[,customer])"
    )]
    MissingColumns(Vec<String>),
    #[error("the CSV header names column {0:?} twice")]
    DuplicateColumn(String),
    #[error("the CSV has more than {MAX_IMPORT_ROWS} rows; split it")]
    TooManyRows,
    #[error("the CSV cannot be read: {0}")]
    Read(String),
}

/// Why one row was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportRejection {
    #[error("malformed CSV record: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(ValidationError),
    #[error("psk_key_hex is not hexadecimal: {0}")]
    BadKeyHex(String),
    #[error("psk_key_hex must be 16 to 64 bytes, got {0} bytes")]
    BadKeyLength(usize),
    #[error("bootstrap_psk_key_hex: {0}")]
    BadBootstrapKey(String),
    #[error("bootstrap_psk_identity and bootstrap_psk_key_hex go together")]
    BootstrapIncomplete,
    #[error("duplicate endpoint: already on line {first_line} of this file")]
    DuplicateEndpointInFile { first_line: u64 },
    #[error("duplicate PSK identity: already on line {first_line} of this file")]
    DuplicateIdentityInFile { first_line: u64 },
    #[error("duplicate endpoint: already in the registry")]
    DuplicateEndpointInDatabase,
    #[error("duplicate PSK identity: already in the registry")]
    DuplicateIdentityInDatabase,
    #[error("not stored: {0}")]
    Storage(String),
}

#[derive(Debug, Clone)]
pub enum ImportOutcome {
    /// Stored. `generated_psk_key` is set when the file had no key: shown once, here only.
    Accepted {
        psk_identity: String,
        generated_psk_key: Option<PskKey>,
    },
    Rejected(ImportRejection),
    /// The import stopped (see [`ImportReport::aborted`]) before reaching this row.
    NotAttempted,
}

#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Line number in the file (the header is line 1), as a spreadsheet shows it.
    pub line: u64,
    pub endpoint: String,
    pub outcome: ImportOutcome,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub rows: Vec<ImportRow>,
    pub ignored_columns: Vec<String>,
    /// Set when a storage error stopped the import; rows before it are stored as reported.
    pub aborted: Option<String>,
    /// The factory bootstrap credentials (identity, key) of the stored rows, for the bootstrap
    /// server's key cache. Never part of the API answer.
    pub bootstrap_credentials: Vec<(String, PskKey)>,
}

impl ImportReport {
    pub fn accepted(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.outcome, ImportOutcome::Accepted { .. }))
            .count()
    }

    pub fn rejected(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.outcome, ImportOutcome::Rejected(_)))
            .count()
    }

    /// The report as CSV: `line,endpoint,status,reason,psk_identity,generated_psk_key_hex`.
    /// It contains generated keys: hand it to the operator who imported, store it nowhere.
    pub fn write_csv<W: Write>(&self, out: W) -> Result<(), csv::Error> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record([
            "line",
            "endpoint",
            "status",
            "reason",
            "psk_identity",
            "generated_psk_key_hex",
        ])?;
        for row in &self.rows {
            let line = row.line.to_string();
            match &row.outcome {
                ImportOutcome::Accepted {
                    psk_identity,
                    generated_psk_key,
                } => {
                    let key = generated_psk_key
                        .as_ref()
                        .map(PskKey::to_hex)
                        .unwrap_or_default();
                    writer.write_record([
                        line.as_str(),
                        &row.endpoint,
                        "accepted",
                        "",
                        psk_identity,
                        &key,
                    ])?
                }
                ImportOutcome::Rejected(reason) => writer.write_record([
                    line.as_str(),
                    &row.endpoint,
                    "rejected",
                    &reason.to_string(),
                    "",
                    "",
                ])?,
                ImportOutcome::NotAttempted => writer.write_record([
                    line.as_str(),
                    &row.endpoint,
                    "not_attempted",
                    "",
                    "",
                    "",
                ])?,
            }
        }
        writer.flush()?;
        Ok(())
    }
}

/// A valid row, waiting for the database checks. `row` indexes `ImportReport::rows`.
#[derive(Debug, Clone)]
pub struct ImportCandidate {
    pub row: usize,
    pub device: NewDevice,
    /// Factory bootstrap credentials (identity, key) from the bootstrap columns.
    pub bootstrap: Option<(String, PskKey)>,
}

/// The pure half of an import: every row either rejected in `report` or listed as a candidate
/// (whose report row is provisionally `NotAttempted`).
#[derive(Debug)]
pub struct ParsedImport {
    pub report: ImportReport,
    pub candidates: Vec<ImportCandidate>,
}

/// Column positions found in the header.
struct Columns {
    endpoint: usize,
    serial: usize,
    model: usize,
    tags: Option<usize>,
    psk_identity: Option<usize>,
    psk_key_hex: Option<usize>,
    customer: Option<usize>,
    bootstrap_psk_identity: Option<usize>,
    bootstrap_psk_key_hex: Option<usize>,
}

fn find_columns(header: &csv::StringRecord) -> Result<(Columns, Vec<String>), ImportError> {
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut ignored = Vec::new();
    for (index, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        if positions.insert(name.clone(), index).is_some() {
            return Err(ImportError::DuplicateColumn(name));
        }
        if !REQUIRED_COLUMNS.contains(&name.as_str()) && !OPTIONAL_COLUMNS.contains(&name.as_str())
        {
            ignored.push(name);
        }
    }
    let missing: Vec<String> = REQUIRED_COLUMNS
        .iter()
        .filter(|c| !positions.contains_key(**c))
        .map(|c| (*c).to_owned())
        .collect();
    let required = |name: &str| positions.get(name).copied();
    match (required("endpoint"), required("serial"), required("model")) {
        (Some(endpoint), Some(serial), Some(model)) if missing.is_empty() => Ok((
            Columns {
                endpoint,
                serial,
                model,
                tags: positions.get("tags").copied(),
                psk_identity: positions.get("psk_identity").copied(),
                psk_key_hex: positions.get("psk_key_hex").copied(),
                customer: positions.get("customer").copied(),
                bootstrap_psk_identity: positions.get("bootstrap_psk_identity").copied(),
                bootstrap_psk_key_hex: positions.get("bootstrap_psk_key_hex").copied(),
            },
            ignored,
        )),
        _ => Err(ImportError::MissingColumns(missing)),
    }
}

fn field(record: &csv::StringRecord, index: Option<usize>) -> &str {
    let text = index.and_then(|i| record.get(i)).unwrap_or("").trim();
    restore_neutralised(text).trim()
}

/// First characters that make a spreadsheet read a cell as a formula (CSV injection, OWASP):
/// `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `text` is one or more `'` followed by a formula start (a neutralised cell).
fn quoted_formula(text: &str) -> bool {
    let rest = text.trim_start_matches('\'');
    rest.len() < text.len() && rest.starts_with(FORMULA_STARTS)
}

/// An export cell that a spreadsheet shows as text: a cell that starts like a formula gets a
/// leading `'` (which spreadsheets hide), and so does a cell that already looks neutralised, so
/// that [`restore_neutralised`] (applied to every imported cell) gives the original back and an
/// export can be imported again unchanged.
pub fn neutralise_formula(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) || quoted_formula(text) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The inverse of [`neutralise_formula`]: drops the one `'` it added.
pub fn restore_neutralised(text: &str) -> &str {
    if quoted_formula(text) {
        text.get(1..).unwrap_or(text)
    } else {
        text
    }
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The factory bootstrap credentials of a row, if it has any.
fn row_bootstrap(
    record: &csv::StringRecord,
    columns: &Columns,
) -> Result<Option<(String, PskKey)>, ImportRejection> {
    let identity = field(record, columns.bootstrap_psk_identity);
    let key_hex = field(record, columns.bootstrap_psk_key_hex);
    match (identity.is_empty(), key_hex.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => {
            validate_psk_identity(identity).map_err(ImportRejection::Invalid)?;
            let key = PskKey::from_hex(key_hex)
                .map_err(|e| ImportRejection::BadBootstrapKey(e.to_string()))?;
            Ok(Some((identity.to_owned(), key)))
        }
        _ => Err(ImportRejection::BootstrapIncomplete),
    }
}

fn row_to_device(
    record: &csv::StringRecord,
    columns: &Columns,
) -> Result<NewDevice, ImportRejection> {
    let endpoint = field(record, Some(columns.endpoint));
    validate_endpoint(endpoint).map_err(ImportRejection::Invalid)?;
    let serial = field(record, Some(columns.serial));
    validate_text("serial", serial, MAX_NAME_LEN).map_err(ImportRejection::Invalid)?;
    let model = field(record, Some(columns.model));
    validate_text("model", model, MAX_NAME_LEN).map_err(ImportRejection::Invalid)?;
    let tags = parse_tags(field(record, columns.tags)).map_err(ImportRejection::Invalid)?;
    let psk_identity = optional(field(record, columns.psk_identity));
    if let Some(identity) = &psk_identity {
        validate_psk_identity(identity).map_err(ImportRejection::Invalid)?;
    }
    let key_hex = field(record, columns.psk_key_hex);
    let psk_key = if key_hex.is_empty() {
        None
    } else {
        Some(PskKey::from_hex(key_hex).map_err(|e| match e {
            SecretError::PskLength(len) => ImportRejection::BadKeyLength(len),
            other => ImportRejection::BadKeyHex(other.to_string()),
        })?)
    };
    let customer = optional(field(record, columns.customer));
    if let Some(customer) = &customer {
        validate_text("customer", customer, MAX_NAME_LEN).map_err(ImportRejection::Invalid)?;
    }
    Ok(NewDevice {
        endpoint: endpoint.to_owned(),
        serial: serial.to_owned(),
        model: model.to_owned(),
        tags,
        customer,
        security_mode: SecurityMode::Psk,
        psk_identity,
        psk_key,
    })
}

/// Reads and validates the whole file. Rows are independent: one bad row never stops the others.
pub fn parse_import<R: Read>(input: R) -> Result<ParsedImport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Read(e.to_string()))?
        .clone();
    let (columns, ignored_columns) = find_columns(&header)?;
    let mut report = ImportReport {
        ignored_columns,
        ..ImportReport::default()
    };
    let mut candidates = Vec::new();
    let mut endpoint_lines: HashMap<String, u64> = HashMap::new();
    let mut identity_lines: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // A record that is not UTF-8 is rejected alone; I/O errors end the import.
            Err(error) if matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) => {
                let line = error.position().map_or(line, csv::Position::line);
                report.rows.push(ImportRow {
                    line,
                    endpoint: String::new(),
                    outcome: ImportOutcome::Rejected(ImportRejection::Malformed(
                        "not valid UTF-8".to_owned(),
                    )),
                });
                continue;
            }
            Err(error) => return Err(ImportError::Read(error.to_string())),
        }
        if report.rows.len() >= MAX_IMPORT_ROWS {
            return Err(ImportError::TooManyRows);
        }
        let line = record.position().map_or(line, csv::Position::line);
        // Blank lines are skipped by the csv reader; a row of empty fields is still reported.
        let endpoint = field(&record, Some(columns.endpoint)).to_owned();
        let outcome = match row_to_device(&record, &columns)
            .and_then(|device| Ok((device, row_bootstrap(&record, &columns)?)))
        {
            Err(rejection) => Err(rejection),
            Ok((device, bootstrap)) => {
                let bootstrap_identity = bootstrap.as_ref().map(|(identity, _)| identity);
                if let Some(&first_line) = endpoint_lines.get(&device.endpoint) {
                    Err(ImportRejection::DuplicateEndpointInFile { first_line })
                } else if let Some(&first_line) = device
                    .psk_identity
                    .iter()
                    .chain(bootstrap_identity)
                    .find_map(|identity| identity_lines.get(identity))
                {
                    Err(ImportRejection::DuplicateIdentityInFile { first_line })
                } else if device.psk_identity.is_some()
                    && device.psk_identity.as_ref() == bootstrap_identity
                {
                    Err(ImportRejection::DuplicateIdentityInFile { first_line: line })
                } else {
                    Ok((device, bootstrap))
                }
            }
        };
        match outcome {
            Ok((device, bootstrap)) => {
                endpoint_lines.insert(device.endpoint.clone(), line);
                for identity in device
                    .psk_identity
                    .iter()
                    .chain(bootstrap.as_ref().map(|(identity, _)| identity))
                {
                    identity_lines.insert(identity.clone(), line);
                }
                candidates.push(ImportCandidate {
                    row: report.rows.len(),
                    device,
                    bootstrap,
                });
                report.rows.push(ImportRow {
                    line,
                    endpoint,
                    outcome: ImportOutcome::NotAttempted,
                });
            }
            Err(rejection) => report.rows.push(ImportRow {
                line,
                endpoint,
                outcome: ImportOutcome::Rejected(rejection),
            }),
        }
    }
    Ok(ParsedImport { report, candidates })
}

/// Writes the export header; call once before [`write_export_row`].
pub fn write_export_header<W: Write>(writer: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    writer.write_record(EXPORT_HEADER)
}

/// One device as an export row (no key). Cells that a spreadsheet would run as a formula are
/// neutralised with a leading `'` ([`neutralise_formula`]; the import removes it again).
pub fn write_export_row<W: Write>(
    writer: &mut csv::Writer<W>,
    device: &Device,
) -> Result<(), csv::Error> {
    let timestamp = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let tags = format_tags(&device.tags);
    let last_seen = device.last_seen.as_ref().map(timestamp).unwrap_or_default();
    let created_at = timestamp(&device.created_at);
    let cells = [
        device.endpoint.as_str(),
        &device.serial,
        &device.model,
        &tags,
        device.psk_identity.as_deref().unwrap_or(""),
        device.customer.as_deref().unwrap_or(""),
        device.security_mode.as_str(),
        device.state.as_str(),
        device.firmware_version.as_deref().unwrap_or(""),
        device.connectivity.as_str(),
        &last_seen,
        &created_at,
    ];
    writer.write_record(cells.map(neutralise_formula).iter().map(|c| c.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_restored() {
        for formula in [
            "=1+2",
            "+A1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"x\")",
        ] {
            let cell = neutralise_formula(formula);
            assert_eq!(cell, format!("'{formula}"));
            assert_eq!(restore_neutralised(&cell), formula);
        }
        // A value that already looks neutralised gets one more quote, so the import restores it.
        for quoted in ["'=1", "''-x"] {
            let cell = neutralise_formula(quoted);
            assert_eq!(cell, format!("'{quoted}"));
            assert_eq!(restore_neutralised(&cell), quoted);
        }
        for plain in ["meter-1", "EM-100", "'quoted", "a=b", "", "'"] {
            assert_eq!(neutralise_formula(plain), plain);
            assert_eq!(restore_neutralised(plain), plain);
        }
    }

    proptest::proptest! {
        #[test]
        fn neutralising_round_trips_and_never_starts_a_formula(text in ".{0,12}") {
            let cell = neutralise_formula(&text);
            proptest::prop_assert!(!cell.starts_with(FORMULA_STARTS));
            proptest::prop_assert_eq!(restore_neutralised(&cell), text.as_str());
        }
    }

    fn rejection(parsed: &ParsedImport, line: u64) -> ImportRejection {
        let row = parsed
            .report
            .rows
            .iter()
            .find(|r| r.line == line)
            .unwrap_or_else(|| panic!("no row for line {line}"));
        match &row.outcome {
            ImportOutcome::Rejected(r) => r.clone(),
            other => panic!("line {line} not rejected: {other:?}"),
        }
    }

    #[test]
    fn parses_good_rows_and_reports_each_problem_with_its_line() {
        let csv = "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
            meter-1,SN1,EM-100,region=north;feeder=F1,id-1,000102030405060708090a0b0c0d0e0f,C-1\n\
            meter-2,SN2,EM-100,,,,\n\
            meter-1,SN3,EM-100,,,,\n\
            meter-4,SN4,EM-100,,id-1,,\n\
            meter 5,SN5,EM-100,,,,\n\
            meter-6,SN6,EM-100,,,zz,\n\
            meter-7,SN7,EM-100,,,0001,\n\
            meter-8,,EM-100,,,,\n\
            meter-9,SN9,EM-100,region,,,\n\
            meter-10,SN10\n";
        let parsed = parse_import(csv.as_bytes()).unwrap();
        assert_eq!(parsed.report.rows.len(), 10);
        assert_eq!(parsed.candidates.len(), 2);
        let first = &parsed.candidates[0].device;
        assert_eq!(first.endpoint, "meter-1");
        assert_eq!(first.tags.get("feeder").map(String::as_str), Some("F1"));
        assert_eq!(first.customer.as_deref(), Some("C-1"));
        assert_eq!(first.psk_key.as_ref().map(|k| k.as_bytes().len()), Some(16));
        assert_eq!(parsed.candidates[1].device.psk_identity, None);
        assert_eq!(
            rejection(&parsed, 4),
            ImportRejection::DuplicateEndpointInFile { first_line: 2 }
        );
        assert_eq!(
            rejection(&parsed, 5),
            ImportRejection::DuplicateIdentityInFile { first_line: 2 }
        );
        assert_eq!(
            rejection(&parsed, 6),
            ImportRejection::Invalid(ValidationError::EndpointCharacter(' '))
        );
        assert!(matches!(
            rejection(&parsed, 7),
            ImportRejection::BadKeyHex(_)
        ));
        assert_eq!(rejection(&parsed, 8), ImportRejection::BadKeyLength(2));
        assert_eq!(
            rejection(&parsed, 9),
            ImportRejection::Invalid(ValidationError::Missing { field: "serial" })
        );
        assert!(matches!(
            rejection(&parsed, 10),
            ImportRejection::Invalid(ValidationError::TagSyntax(_))
        ));
        assert_eq!(
            rejection(&parsed, 11),
            ImportRejection::Invalid(ValidationError::Missing { field: "model" })
        );
    }

    #[test]
    fn header_problems_refuse_the_whole_file() {
        assert!(matches!(
            parse_import("endpoint,model\nm,x\n".as_bytes()),
            Err(ImportError::MissingColumns(c)) if c == ["serial"]
        ));
        assert!(matches!(
            parse_import("endpoint,serial,model,model\n".as_bytes()),
            Err(ImportError::DuplicateColumn(_))
        ));
        let parsed = parse_import("Model,Endpoint,Serial,state\nEM,m-1,S\n".as_bytes()).unwrap();
        assert_eq!(parsed.report.ignored_columns, ["state"]);
        assert_eq!(parsed.candidates[0].device.endpoint, "m-1");
    }

    #[test]
    fn non_utf8_row_is_rejected_alone() {
        let mut csv = b"endpoint,serial,model\nm-1,S\xff,EM\nm-2,S2,EM\n".to_vec();
        csv.extend_from_slice(b"");
        let parsed = parse_import(csv.as_slice()).unwrap();
        assert_eq!(parsed.candidates.len(), 1);
        assert!(matches!(
            rejection(&parsed, 2),
            ImportRejection::Malformed(_)
        ));
    }

    #[test]
    fn report_csv_lists_generated_keys_once() {
        let key = PskKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let report = ImportReport {
            rows: vec![
                ImportRow {
                    line: 2,
                    endpoint: "m-1".into(),
                    outcome: ImportOutcome::Accepted {
                        psk_identity: "fe-1".into(),
                        generated_psk_key: Some(key),
                    },
                },
                ImportRow {
                    line: 3,
                    endpoint: "m-1".into(),
                    outcome: ImportOutcome::Rejected(ImportRejection::DuplicateEndpointInFile {
                        first_line: 2,
                    }),
                },
            ],
            ..ImportReport::default()
        };
        assert_eq!((report.accepted(), report.rejected()), (1, 1));
        let mut out = Vec::new();
        report.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("2,m-1,accepted,,fe-1,000102030405060708090a0b0c0d0e0f"));
        assert!(text.contains("3,m-1,rejected,duplicate endpoint: already on line 2 of this file"));
    }
}
