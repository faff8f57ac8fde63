//! Demand traces: CSV `timestamp,value` with a header, timestamps as `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339.

use std::path::Path;

use crate::policy::{LoadSample, Timestamp};

use super::SimulateError;

/// A trace read from a file, named after the file's stem.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: String,
    pub points: Vec<LoadSample>,
}

/// Every `*.csv` file of `dir` as a trace, sorted by name; other files are not read.
pub fn read_traces(dir: &Path) -> Result<Vec<Trace>, SimulateError> {
    let io = |e: std::io::Error| SimulateError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "csv"));
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| SimulateError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            Ok(Trace {
                name: path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                points: parse_trace(&path.display().to_string(), &text)?,
            })
        })
        .collect()
}

/// Parses a trace; `name` is used in errors. Needs at least two points in increasing time order.
pub fn parse_trace(name: &str, text: &str) -> Result<Vec<LoadSample>, SimulateError> {
    let bad = |line: usize, message: String| SimulateError::Trace {
        name: name.to_string(),
        line,
        message,
    };
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (ts, value) = line
            .split_once(',')
            .ok_or_else(|| bad(line_no, "expected `timestamp,value`".into()))?;
        let at = humantime::parse_rfc3339_weak(ts.trim())
            .map_err(|e| bad(line_no, format!("bad timestamp `{}`: {e}", ts.trim())))?;
        let demand: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(line_no, format!("bad value `{}`", value.trim())))?;
        if !demand.is_finite() || demand < 0.0 {
            return Err(bad(
                line_no,
                format!("demand must be a finite number >= 0, got {demand}"),
            ));
        }
        let at = Timestamp::from_system_time(at);
        if points.last().is_some_and(|p: &LoadSample| p.at >= at) {
            return Err(bad(line_no, "timestamps must increase".into()));
        }
        points.push(LoadSample { at, value: demand });
    }
    if points.len() < 2 {
        return Err(bad(
            1,
            "a trace needs a header and at least two points".into(),
        ));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::interpolate;

    #[test]
    fn parses_and_interpolates() {
        let t = parse_trace(
            "t.csv",
            "timestamp,value\n2014-07-01 00:00:00,100\n2014-07-01 00:30:00,200.5\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].at.millis() - t[0].at.millis(), 1_800_000);
        assert_eq!(
            interpolate(&t, t[0].at.plus(std::time::Duration::from_secs(900))),
            150.25
        );
        assert_eq!(
            interpolate(&t, t[1].at.plus(std::time::Duration::from_secs(900))),
            200.5
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_trace(
            "t.csv",
            "timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 00:00:00,2\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "t.csv:3: timestamps must increase");
        let e = parse_trace("t.csv", "timestamp,value\nyesterday,1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.csv:2: bad timestamp `yesterday`"),
            "{e}"
        );
    }
}
