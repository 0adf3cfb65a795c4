//! Aggregation over seeds: each run's metrics, mean, standard deviation and 95% t-interval of
//! each metric per group, and paired differences between groups over the seeds they share.

use super::runs::Row;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The metrics of one finished run.
#[derive(Clone, Debug, Serialize)]
pub struct RunMetrics {
    /// The group (arm and sweep point).
    pub group: String,
    /// The arm.
    pub arm: String,
    /// The sweep point.
    pub point: Vec<(String, String)>,
    /// The seed.
    pub seed: u64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The folder of the results shown, when not the run folder (one of its evaluation
    /// folders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_dir: Option<PathBuf>,
    /// Metric name -> value: `clean`, `worst <eps>`, `train seconds`, `passes`, `steps`.
    pub values: BTreeMap<String, f64>,
    /// Monitor reports: (step, clean, PGD accuracy).
    pub monitor: Vec<(usize, f64, f64)>,
    /// The protocol table's metrics of the run, in its evaluations' order (also in `values`),
    /// when the run wants the table (several evaluations, a label share, a transfer or
    /// corruption accuracies); empty otherwise.
    pub protocol: Vec<String>,
}

/// The radius of a worst-case metric's name (`worst 8/255` -> 8/255), `None` for other metrics.
pub fn worst_eps(metric: &str) -> Option<f64> {
    let label = metric.strip_prefix("worst ")?;
    match label.split_once("/255") {
        Some((n, _)) => n.parse::<f64>().ok().map(|n| n / 255.0),
        None => label.parse().ok(),
    }
}

/// The worst-case metrics among `names`, once each, from the smallest radius to the largest.
pub fn worst_by_radius<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut keys: Vec<(f64, String)> = Vec::new();
    for k in names {
        if let Some(eps) = worst_eps(k) {
            if !keys.iter().any(|(_, existing)| existing == k) {
                keys.push((eps, k.clone()));
            }
        }
    }
    keys.sort_by(|a, b| a.0.total_cmp(&b.0));
    keys.into_iter().map(|(_, k)| k).collect()
}

impl RunMetrics {
    /// The metrics of `row` (its first evaluator), a run of `group` (arm `arm` at sweep point
    /// `point`) with seed `seed`.
    pub fn of(row: &Row, group: &str, arm: &str, point: &[(String, String)], seed: u64) -> Self {
        let mut values = BTreeMap::new();
        if let Some(e) = row.results.evaluations.first() {
            values.insert("clean".to_string(), e.clean_accuracy);
            for w in &e.worst_case {
                values.insert(format!("worst {}", row.eps_label(w.eps)), w.accuracy);
            }
        }
        let summary = &row.summary;
        values.insert("train seconds".into(), summary.seconds);
        values.insert(
            "passes".into(),
            (summary.forward_passes + summary.backward_passes) as f64,
        );
        values.insert("steps".into(), summary.steps as f64);
        let protocol_metrics = super::protocol::metrics(row);
        let protocol = if super::protocol::row_wants(row) {
            protocol_metrics.iter().map(|(k, _)| k.clone()).collect()
        } else {
            Vec::new()
        };
        values.extend(protocol_metrics);
        RunMetrics {
            group: group.to_string(),
            arm: arm.to_string(),
            point: point.to_vec(),
            seed,
            run_dir: row.run_dir.clone(),
            results_dir: (row.results_dir != row.run_dir).then(|| row.results_dir.clone()),
            values,
            monitor: row.monitor(),
            protocol,
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: the factor of a two-sided
/// 95% interval. Values of `scipy.stats.t.ppf(0.975, df)` for df 1..30, 40, 60, 120 and the
/// normal limit, linear in 1/df between them.
pub fn t975(df: usize) -> f64 {
    const SMALL: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
        2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
        2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
        2.048407, 2.045230, 2.042272,
    ];
    const LARGE: [(f64, f64); 4] = [
        (40.0, 2.021075),
        (60.0, 2.000298),
        (120.0, 1.979930),
        (f64::INFINITY, 1.959964),
    ];
    match df {
        0 => f64::NAN,
        1..=30 => SMALL[df - 1],
        _ => {
            let x = 1.0 / df as f64;
            let mut previous = (30.0, SMALL[29]);
            for (d, t) in LARGE {
                if (df as f64) <= d {
                    let (x0, x1) = (1.0 / previous.0, 1.0 / d);
                    return previous.1 + (t - previous.1) * (x - x0) / (x1 - x0);
                }
                previous = (d, t);
            }
            1.959964
        }
    }
}

/// Mean, standard deviation and 95% t-interval of a sample.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (n - 1 in the denominator; 0 for one value).
    pub sd: f64,
    /// Half-width of the 95% t-interval (NaN for one value).
    pub ci95: f64,
}

/// The summary of `values`.
pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let var = if n > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let sd = var.sqrt();
    let ci95 = if n > 1 {
        t975(n - 1) * sd / (n as f64).sqrt()
    } else {
        f64::NAN
    };
    Summary { n, mean, sd, ci95 }
}

/// Per group, per metric, the summary over seeds (groups in plan order).
pub fn by_group(runs: &[RunMetrics]) -> Vec<(String, BTreeMap<String, Summary>)> {
    let mut groups: Vec<String> = Vec::new();
    for r in runs {
        if !groups.contains(&r.group) {
            groups.push(r.group.clone());
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let members: Vec<&RunMetrics> = runs.iter().filter(|r| r.group == g).collect();
            let keys: std::collections::BTreeSet<&String> =
                members.iter().flat_map(|r| r.values.keys()).collect();
            let stats = keys
                .into_iter()
                .map(|k| {
                    let v: Vec<f64> = members
                        .iter()
                        .filter_map(|r| r.values.get(k))
                        .copied()
                        .collect();
                    (k.clone(), summarize(&v))
                })
                .collect();
            (g, stats)
        })
        .collect()
}

/// The paired difference `a - b` of `metric` over the seeds both groups ran.
pub fn paired(runs: &[RunMetrics], a: &str, b: &str, metric: &str) -> Option<Summary> {
    let of = |g: &str| -> BTreeMap<u64, f64> {
        runs.iter()
            .filter(|r| r.group == g)
            .filter_map(|r| Some((r.seed, *r.values.get(metric)?)))
            .collect()
    };
    let (va, vb) = (of(a), of(b));
    let d: Vec<f64> = va
        .iter()
        .filter_map(|(s, x)| Some(x - vb.get(s)?))
        .collect();
    (!d.is_empty()).then(|| summarize(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_case_columns_go_by_radius_not_by_name() {
        let names: Vec<String> = ["worst 0.1", "clean", "worst 8/255", "worst 4/255"]
            .map(String::from)
            .to_vec();
        // by name, "worst 0.1" would come first; 0.1 > 8/255 = 0.0314 > 4/255 = 0.0157
        assert_eq!(
            worst_by_radius(&names),
            ["worst 4/255", "worst 8/255", "worst 0.1"]
        );
        assert_eq!(worst_eps("clean"), None);
    }

    #[test]
    fn summaries_match_the_textbook() {
        // numpy: x = [0.61, 0.65, 0.58]; x.mean() = 0.613333, x.std(ddof=1) = 0.035119;
        // scipy.stats.t.ppf(0.975, 2) * 0.035119 / sqrt(3) = 0.087240
        let s = summarize(&[0.61, 0.65, 0.58]);
        assert_eq!(s.n, 3);
        assert!((s.mean - 0.613_333).abs() < 1e-6, "{s:?}");
        assert!((s.sd - 0.035_119).abs() < 1e-6, "{s:?}");
        assert!((s.ci95 - 0.087_240).abs() < 1e-5, "{s:?}");
        assert!(summarize(&[0.5]).ci95.is_nan());
        // the table's ends and the interpolation between 30 and 40 degrees of freedom
        assert_eq!(t975(1), 12.706205);
        assert!((t975(35) - 2.030108).abs() < 2e-3); // scipy: 2.030108
        assert!((t975(100_000) - 1.96).abs() < 1e-3);
    }
}
