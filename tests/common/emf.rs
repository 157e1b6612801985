//! The CloudWatch Embedded Metric Format, as the tests check a step's log lines against
//! it: a parser of the specification's rules, not a string match.

use serde_json::{Map, Value};

/// The EMF specification's rules for one log line, checked member by member:
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
pub fn check_emf(line: &str) -> Result<Map<String, Value>, String> {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let doc: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let aws = doc["_aws"].as_object().ok_or("no _aws object")?;
    aws.get("Timestamp")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .ok_or("_aws.Timestamp is not a positive integer of milliseconds")?;
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    for d in directives {
        let ns = d["Namespace"].as_str().ok_or("Namespace missing")?;
        if ns.is_empty() || ns.len() > 255 {
            return Err(format!("Namespace {ns:?}: 1 to 255 characters"));
        }
        for set in d["Dimensions"].as_array().ok_or("Dimensions missing")? {
            let set = set.as_array().ok_or("a DimensionSet is not an array")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions in a set".into());
            }
            for key in set {
                let key = key.as_str().ok_or("a dimension name is not a string")?;
                doc.get(key)
                    .and_then(Value::as_str)
                    .ok_or(format!("dimension {key} is not a string member"))?;
            }
        }
        let metrics = d["Metrics"].as_array().ok_or("Metrics missing")?;
        if metrics.len() > 100 {
            return Err("more than 100 metrics in a directive".into());
        }
        for m in metrics {
            let name = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty() && n.len() <= 255);
            let name = name.ok_or("a metric Name is missing or too long")?;
            if let Some(unit) = m.get("Unit") {
                let unit = unit.as_str().unwrap_or_default();
                if !UNITS.contains(&unit) {
                    return Err(format!("{name}: unit {unit:?} is not a CloudWatch unit"));
                }
            }
            let numeric = match &doc.get(name) {
                Some(Value::Number(_)) => true,
                Some(Value::Array(vs)) => vs.len() <= 100 && vs.iter().all(Value::is_number),
                _ => false,
            };
            if !numeric {
                return Err(format!("metric {name} has no numeric member"));
            }
        }
    }
    Ok(doc)
}

/// The EMF documents among `text`'s lines (a process's standard error), each checked.
pub fn emf_lines(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| check_emf(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
