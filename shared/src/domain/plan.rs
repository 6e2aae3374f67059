use std::fmt;

/// A plan that can be trialled. Parsed once at the edge; everything inside uses the enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    Starter,
    Growth,
    Pro,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Starter, Plan::Growth, Plan::Pro];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Pro => "pro",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        Plan::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// "starter, growth, pro": for error messages, so they never drift from the enum.
    pub fn list() -> String {
        Plan::ALL.map(Plan::as_str).join(", ")
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_three_plans() {
        for plan in Plan::ALL {
            assert_eq!(Plan::parse(plan.as_str()), Some(plan));
        }
        assert_eq!(Plan::parse("Starter"), None);
        assert_eq!(Plan::parse("enterprise"), None);
        assert_eq!(Plan::parse(""), None);
        assert_eq!(Plan::list(), "starter, growth, pro");
    }
}
