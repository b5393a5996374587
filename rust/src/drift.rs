//! The drift monitor's open window of one (model, provider): each finished call's values added in one step.
//!
//! gateway.observe.drift keeps the closed windows, baselines, tests and flags in Python, where a window's close runs
//! once every `window_s`; only the accumulation runs on every call, so only it lives here: one core call instead of
//! about fifteen Python calls and objects a call (docs/benchmarks.md, "Third round: the way out"). A window leaves
//! as plain counts in the shape Python's `drift.decode_window` reads.

use std::cmp::Ordering;

use crate::error::CoreError;

/// The metrics a call feeds, named as gateway.observe.drift names them (tests/observe/test_drift.py pins both).
pub const LATENCY: &str = "latency_s";
pub const TTFC: &str = "ttfc_s";
pub const ANSWER_TOKENS: &str = "answer_tokens";
pub const STATUS: &str = "status";
pub const FINISH_REASON: &str = "finish_reason";
pub const REFUSAL: &str = "refusal";
/// Prompt lengths are kept per route rule, as `prompt_tokens:<route rule>`.
pub const PROMPT_TOKENS: &str = "prompt_tokens";
pub const REFUSED: &str = "refused";
pub const ANSWERED: &str = "answered";
/// The label that stands for every category (or route rule) past the cap.
pub const OTHER: &str = "other";

/// Which of the two sets of histogram edges a numeric metric uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Seconds,
    Tokens,
}

/// A histogram over fixed edges: `counts[i]` holds the values for which `i` is the first edge `>=` them (Python's
/// `bisect_left`), so `counts` has one slot more than the edges; `total` is the exact sum, for the mean.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub scale: Scale,
    pub counts: Vec<u64>,
    pub n: u64,
    pub total: f64,
}

/// Counts per label, in the order the labels first came.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tally {
    pub counts: Vec<(String, u64)>,
    pub n: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    Numeric(Histogram),
    Categorical(Tally),
}

/// One finished call, as the drift monitor reads it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The gRPC status name; only calls with `OK` feed the answer's metrics (latency, length, finish, refusal).
    pub status: &'a str,
    pub latency_s: f64,
    pub ttfc_s: Option<f64>,
    /// Counts arrive as floats: a provider's figure is taken as given, even a negative one (it lands in the first
    /// bin, as Python's `bisect` puts it), rather than refused on the way out of a call.
    pub answer_tokens: Option<f64>,
    /// Empty: none to count.
    pub finish_reason: &'a str,
    pub refused: Option<bool>,
    pub prompt_tokens: Option<f64>,
    pub route_rule: &'a str,
}

/// The open window of one (model, provider), and the route rules it has seen (those outlive a window, as the cap on
/// them does).
#[derive(Clone, Debug)]
pub struct OpenWindow {
    seconds_edges: Vec<f64>,
    tokens_edges: Vec<f64>,
    max_categories: usize,
    max_route_rules: usize,
    /// Route rule -> its prompt-length metric's name, built once.
    rules: Vec<(String, String)>,
    /// Metric name -> its values, in the order the metrics first came; a handful, so a scan beats a hash.
    metrics: Vec<(String, Metric)>,
}

impl OpenWindow {
    /// `seconds_edges`, `tokens_edges`: the histograms' edges, ascending; `max_categories`: labels kept per
    /// categorical metric, the last of them `other`; `max_route_rules`: route rules kept before further ones count
    /// as `other`.
    pub fn new(
        seconds_edges: Vec<f64>,
        tokens_edges: Vec<f64>,
        max_categories: usize,
        max_route_rules: usize,
    ) -> Result<Self, CoreError> {
        for (name, edges) in [
            ("seconds_edges", &seconds_edges),
            ("tokens_edges", &tokens_edges),
        ] {
            // A NaN compares with nothing, so it is refused with the descending pairs.
            let out_of_order =
                |pair: &[f64]| pair[0].partial_cmp(&pair[1]).is_none_or(Ordering::is_gt);
            if edges.is_empty() || edges.windows(2).any(out_of_order) {
                return Err(CoreError::InvalidArgument(format!(
                    "{name}: give at least one edge, in ascending order"
                )));
            }
        }
        Ok(Self {
            seconds_edges,
            tokens_edges,
            max_categories,
            max_route_rules,
            rules: Vec::new(),
            metrics: Vec::new(),
        })
    }

    /// Adds one call: its status and prompt length always, its answer's figures only when it succeeded, so a burst
    /// of fast failures shows as errors, not as a latency shift.
    pub fn observe(&mut self, call: &Observation<'_>) {
        self.add_label(STATUS, call.status);
        if let Some(tokens) = call.prompt_tokens {
            let name = self.prompt_metric(call.route_rule);
            self.add_value(&name, Scale::Tokens, tokens);
        }
        if call.status != "OK" {
            return;
        }
        self.add_value(LATENCY, Scale::Seconds, call.latency_s);
        if let Some(ttfc) = call.ttfc_s {
            self.add_value(TTFC, Scale::Seconds, ttfc);
        }
        if let Some(tokens) = call.answer_tokens {
            self.add_value(ANSWER_TOKENS, Scale::Tokens, tokens);
        }
        if !call.finish_reason.is_empty() {
            self.add_label(FINISH_REASON, call.finish_reason);
        }
        if let Some(refused) = call.refused {
            self.add_label(REFUSAL, if refused { REFUSED } else { ANSWERED });
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The window's metrics; the window starts again empty (the route rules stay).
    pub fn take(&mut self) -> Vec<(String, Metric)> {
        std::mem::take(&mut self.metrics)
    }

    #[must_use]
    pub fn metrics(&self) -> &[(String, Metric)] {
        &self.metrics
    }

    #[must_use]
    pub fn edges(&self, scale: Scale) -> &[f64] {
        match scale {
            Scale::Seconds => &self.seconds_edges,
            Scale::Tokens => &self.tokens_edges,
        }
    }

    fn prompt_metric(&mut self, rule: &str) -> String {
        if let Some((_, name)) = self.rules.iter().find(|(r, _)| r == rule) {
            return name.clone();
        }
        let rule = if self.rules.len() >= self.max_route_rules {
            OTHER
        } else {
            rule
        };
        if let Some((_, name)) = self.rules.iter().find(|(r, _)| r == rule) {
            return name.clone();
        }
        let name = format!("{PROMPT_TOKENS}:{rule}");
        self.rules.push((rule.to_owned(), name.clone()));
        name
    }

    fn metric(&mut self, name: &str, make: impl FnOnce() -> Metric) -> &mut Metric {
        let at = if let Some(at) = self.metrics.iter().position(|(n, _)| n == name) {
            at
        } else {
            self.metrics.push((name.to_owned(), make()));
            self.metrics.len() - 1
        };
        &mut self.metrics[at].1
    }

    fn add_value(&mut self, name: &str, scale: Scale, value: f64) {
        let slot = self.edges(scale).partition_point(|&edge| edge < value);
        let slots = self.edges(scale).len() + 1;
        let metric = self.metric(name, || {
            Metric::Numeric(Histogram {
                scale,
                counts: vec![0; slots],
                n: 0,
                total: 0.0,
            })
        });
        if let Metric::Numeric(histogram) = metric {
            histogram.counts[slot] += 1;
            histogram.n += 1;
            histogram.total += value;
        }
    }

    fn add_label(&mut self, name: &str, label: &str) {
        let cap = self.max_categories.saturating_sub(1);
        let metric = self.metric(name, || Metric::Categorical(Tally::default()));
        if let Metric::Categorical(tally) = metric {
            let counts = &mut tally.counts;
            let known = counts.iter().any(|(l, _)| l == label);
            let label = if !known && counts.len() >= cap {
                OTHER
            } else {
                label
            };
            match counts.iter_mut().find(|(l, _)| l == label) {
                Some((_, count)) => *count += 1,
                None => counts.push((label.to_owned(), 1)),
            }
            tally.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(max_categories: usize, max_route_rules: usize) -> OpenWindow {
        OpenWindow::new(
            vec![0.1, 1.0, 10.0],
            vec![0.0, 1.0, 2.0, 4.0],
            max_categories,
            max_route_rules,
        )
        .expect("ascending edges")
    }

    #[test]
    fn edges_out_of_order_or_missing_are_refused() {
        for edges in [vec![], vec![1.0, 0.5], vec![0.0, f64::NAN]] {
            let refused = OpenWindow::new(edges, vec![1.0], 24, 4);
            assert!(
                matches!(refused, Err(CoreError::InvalidArgument(m)) if m.contains("seconds_edges"))
            );
        }
    }

    fn ok_call<'a>() -> Observation<'a> {
        Observation {
            status: "OK",
            latency_s: 1.0,
            ttfc_s: None,
            answer_tokens: Some(3.0),
            finish_reason: "stop",
            refused: Some(false),
            prompt_tokens: Some(2.0),
            route_rule: "direct",
        }
    }

    fn get<'w>(w: &'w OpenWindow, name: &str) -> &'w Metric {
        &w.metrics()
            .iter()
            .find(|(n, _)| n == name)
            .expect("metric present")
            .1
    }

    #[test]
    fn a_value_lands_in_the_first_bin_whose_edge_is_at_least_it() {
        let mut w = window(24, 4);
        for latency in [0.05, 0.1, 0.5, 1.0, 11.0] {
            w.observe(&Observation {
                latency_s: latency,
                ..ok_call()
            });
        }
        let Metric::Numeric(h) = get(&w, LATENCY) else {
            panic!("latency is numeric")
        };
        assert_eq!(h.counts, vec![2, 2, 0, 1]);
        assert_eq!(h.n, 5);
        assert!((h.total - 12.65).abs() < 1e-12);
        assert_eq!(h.scale, Scale::Seconds);
    }

    #[test]
    fn a_failed_call_counts_its_status_and_prompt_only() {
        let mut w = window(24, 4);
        w.observe(&Observation {
            status: "UNAVAILABLE",
            ..ok_call()
        });
        let names: Vec<&str> = w.metrics().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec![STATUS, "prompt_tokens:direct"]);
    }

    #[test]
    fn labels_past_the_cap_count_as_other() {
        let mut w = window(3, 4);
        for status in ["OK", "A", "B", "C", "OK"] {
            w.observe(&Observation {
                status,
                prompt_tokens: None,
                ..ok_call()
            });
        }
        let Metric::Categorical(t) = get(&w, STATUS) else {
            panic!("status is categorical")
        };
        let expected = vec![
            ("OK".to_owned(), 2),
            ("A".to_owned(), 1),
            (OTHER.to_owned(), 2),
        ];
        assert_eq!(t.counts, expected);
        assert_eq!(t.n, 5);
    }

    #[test]
    fn route_rules_past_the_cap_share_one_metric_and_outlive_the_window() {
        let mut w = window(24, 1);
        for rule in ["r1", "r2", "r3"] {
            w.observe(&Observation {
                route_rule: rule,
                ..ok_call()
            });
        }
        let taken = w.take();
        assert!(w.is_empty());
        let names: Vec<&str> = taken.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"prompt_tokens:r1") && names.contains(&"prompt_tokens:other"));
        w.observe(&Observation {
            route_rule: "r4",
            ..ok_call()
        });
        assert!(w.metrics().iter().any(|(n, _)| n == "prompt_tokens:other"));
    }

    #[test]
    fn refusals_and_answers_are_two_labels_of_one_metric() {
        let mut w = window(24, 4);
        w.observe(&Observation {
            refused: Some(true),
            ..ok_call()
        });
        w.observe(&ok_call());
        w.observe(&Observation {
            refused: None,
            ..ok_call()
        });
        let Metric::Categorical(t) = get(&w, REFUSAL) else {
            panic!("refusal is categorical")
        };
        assert_eq!(
            t.counts,
            vec![(REFUSED.to_owned(), 1), (ANSWERED.to_owned(), 1)]
        );
    }
}
