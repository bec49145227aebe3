//! Job-statistics traces: JSON Lines files of [`JobSample`]s (format described in
//! [`crate::model::job`]). Recorded in the lab (`lab-*.jsonl`) or hand-made
//! (`synthetic-*.jsonl`), they let the progress model and the policies be tested on real shapes.

use std::path::{Path, PathBuf};

use crate::model::job::JobSample;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: cannot read trace: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}: not a job sample: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: sampled_at_ms {at_ms} goes back in time (previous {previous_ms})")]
    OutOfOrder {
        path: PathBuf,
        line: usize,
        at_ms: u64,
        previous_ms: u64,
    },
}

/// A parsed trace: its samples plus the `# key: value` comment lines, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub samples: Vec<JobSample>,
    pub header: Vec<(String, String)>,
}

impl Trace {
    /// The first comment value under `key` (e.g. `expect-verdict`).
    pub fn header_value(&self, key: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses trace text; `origin` names the file in errors.
pub fn parse_trace(text: &str, origin: &Path) -> Result<Trace, TraceError> {
    let mut trace = Trace::default();
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((key, value)) = comment.split_once(':') {
                trace
                    .header
                    .push((key.trim().to_string(), value.trim().to_string()));
            }
            continue;
        }
        let sample: JobSample = serde_json::from_str(line).map_err(|e| TraceError::Parse {
            path: origin.to_path_buf(),
            line: index + 1,
            message: e.to_string(),
        })?;
        if let Some(previous) = trace.samples.last() {
            if sample.sampled_at_ms < previous.sampled_at_ms {
                return Err(TraceError::OutOfOrder {
                    path: origin.to_path_buf(),
                    line: index + 1,
                    at_ms: sample.sampled_at_ms,
                    previous_ms: previous.sampled_at_ms,
                });
            }
        }
        trace.samples.push(sample);
    }
    Ok(trace)
}

/// Reads and parses a trace file with its header comments.
pub fn read_trace(path: impl AsRef<Path>) -> Result<Trace, TraceError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_trace(&text, path)
}

/// Reads a trace file's samples.
pub fn load_trace(path: impl AsRef<Path>) -> Result<Vec<JobSample>, TraceError> {
    read_trace(path).map(|trace| trace.samples)
}

/// `tests/fixtures` of this crate, where recorded and synthetic traces live.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `*.jsonl` trace in `dir`, sorted by name, so tests pick up new `lab-*.jsonl` files
/// without being edited.
pub fn trace_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_samples() {
        let text = "# synthetic: made by hand\n# expect-verdict: converging\n\n\
                    {\"sampled_at_ms\":0}\n{\"sampled_at_ms\":500,\"memory_iteration\":1}\n";
        let trace = parse_trace(text, Path::new("t.jsonl")).unwrap();
        assert_eq!(trace.samples.len(), 2);
        assert_eq!(trace.header_value("expect-verdict"), Some("converging"));
        assert_eq!(trace.header_value("synthetic"), Some("made by hand"));
        assert_eq!(trace.samples[1].memory_iteration, Some(1));
    }

    #[test]
    fn errors_name_file_and_line() {
        let error = parse_trace("{\"sampled_at_ms\":0}\nnot json\n", Path::new("x.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("x.jsonl:2: not a job sample"), "{error}");
        let error = parse_trace(
            "{\"sampled_at_ms\":900}\n{\"sampled_at_ms\":100}\n",
            Path::new("y.jsonl"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("y.jsonl:2"), "{error}");
    }

    #[test]
    fn every_fixture_loads() {
        let files = trace_files(&fixtures_dir());
        assert!(!files.is_empty(), "no traces in {:?}", fixtures_dir());
        for file in files {
            let samples = load_trace(&file).unwrap();
            assert!(!samples.is_empty(), "{file:?} has no samples");
        }
    }
}
