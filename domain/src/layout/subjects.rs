/// The keys of subjects under one subject prefix (before the store's
/// prefix): `s:<subject prefix><subject>`, KRules' layout. Neither part is
/// escaped (Python services build the same key), so prefix `a:` with
/// subject `b` and prefix `a` with subject `:b` are the same key; patterns
/// escape the subject prefix, so a listing stays under it.
///
/// ```
/// use statehouse_domain::layout::SubjectKeys;
///
/// let keys = SubjectKeys::new("app:");
/// assert_eq!(keys.subject("user:1"), "s:app:user:1");
/// assert_eq!(SubjectKeys::new("a:").subject("b"), SubjectKeys::new("a").subject(":b"));
/// assert_eq!(SubjectKeys::new("x[1]").pattern("u*"), r"s:x\[1\]u*");
/// assert_eq!(keys.name_of("s:app:user:1"), Some("user:1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeys {
    /// `s:<subject prefix>`.
    head: String,
    /// The same, glob characters escaped.
    head_pattern: String,
}

impl SubjectKeys {
    /// The keys of subjects under `subject_prefix` (verbatim; may be empty).
    pub fn new(subject_prefix: &str) -> Self {
        let head = format!("s:{subject_prefix}");
        Self {
            head_pattern: crate::KeyPattern::escape(&head),
            head,
        }
    }

    /// The hash of `subject`.
    pub fn subject(&self, subject: &str) -> String {
        [self.head.as_str(), subject].concat()
    }

    /// The glob pattern of the subjects whose names match `pattern` (a
    /// glob over names): the head escaped, the pattern as given.
    pub fn pattern(&self, pattern: &str) -> String {
        format!("{}{pattern}", self.head_pattern)
    }

    /// The subject name of a key of this layout; `None` for another key.
    pub fn name_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.head.as_str())
            .filter(|name| !name.is_empty())
    }
}
