//! Edit distance: Damerau-Levenshtein in its optimal-string-alignment form (insertion,
//! deletion, substitution and transposition of neighbours each cost one; a substring is
//! never edited twice).

/// The optimal-string-alignment distance between `a` and `b`.
///
/// ```
/// use member_search::distance::osa;
/// let c = |s: &str| s.chars().collect::<Vec<_>>();
/// assert_eq!(osa(&c("james"), &c("jmaes")), 1); // transposition
/// assert_eq!(osa(&c("ross"), &c("rsos")), 1);
/// assert_eq!(osa(&c("kitten"), &c("sitting")), 3);
/// ```
#[must_use]
pub fn osa(a: &[char], b: &[char]) -> usize {
    osa_bounded(a, b, usize::MAX).unwrap_or(usize::MAX)
}

/// The optimal-string-alignment distance when it is at most `max`, else `None` (stops as
/// soon as a whole row exceeds `max`).
#[must_use]
pub fn osa_bounded(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    if a.is_empty() || b.is_empty() {
        let d = a.len().max(b.len());
        return (d <= max).then_some(d);
    }
    let width = b.len() + 1;
    // Three rows: two back (transpositions), one back, current.
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// The typos a word of `len` characters tolerates: none up to 3, one for 4–7, two from 8.
#[must_use]
pub const fn allowed_typos(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn each_kind_of_typo_costs_one() {
        assert_eq!(osa(&c("jones"), &c("jomes")), 1, "substitution");
        assert_eq!(osa(&c("jones"), &c("jnes")), 1, "deletion");
        assert_eq!(osa(&c("jones"), &c("joanes")), 1, "insertion");
        assert_eq!(osa(&c("jones"), &c("ojnes")), 1, "transposition");
        assert_eq!(osa(&c("jones"), &c("jones")), 0);
        assert_eq!(osa(&c(""), &c("abc")), 3);
        assert_eq!(osa(&c("ca"), &c("abc")), 3, "OSA, not unrestricted DL");
    }

    #[test]
    fn bounded_stops_early_and_agrees() {
        let words = [
            "maria", "mario", "marie", "mariana", "martinez", "martines", "ana", "",
        ];
        for a in words {
            for b in words {
                let d = osa(&c(a), &c(b));
                for max in 0..4 {
                    assert_eq!(
                        osa_bounded(&c(a), &c(b), max),
                        (d <= max).then_some(d),
                        "{a} {b} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn typo_budget_by_length() {
        assert_eq!(allowed_typos(3), 0);
        assert_eq!(allowed_typos(4), 1);
        assert_eq!(allowed_typos(7), 1);
        assert_eq!(allowed_typos(8), 2);
    }
}
