use super::escape_component;

/// The keys of one task namespace (before the store's prefix).
///
/// ```text
/// {ns}:task:<id>          string  the task record (JSON)
/// {ns}:by-service:<name>  zset    task ids of a service, scored by update time (ms)
/// {ns}:by-user:<id>       zset    task ids of a user, scored by update time (ms)
/// ```
///
/// ```
/// use statehouse_domain::layout::TaskKeys;
///
/// let keys = TaskKeys::new("tasks");
/// assert_eq!(keys.record("job:1"), "{tasks}:task:job%3A1");
/// assert_eq!(keys.by_service("mailer"), "{tasks}:by-service:mailer");
/// assert_eq!(keys.by_user("u 1"), "{tasks}:by-user:u%201");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKeys {
    /// `{<escaped namespace>}:`, the start of every key.
    head: String,
}

impl TaskKeys {
    /// The keys of `namespace` (escaped, so any text is a valid namespace).
    pub fn new(namespace: &str) -> Self {
        Self {
            head: format!("{{{}}}:", escape_component(namespace)),
        }
    }

    /// The key of a task record.
    pub fn record(&self, id: &str) -> String {
        format!("{}task:{}", self.head, escape_component(id))
    }

    /// The index of a service's tasks.
    pub fn by_service(&self, service: &str) -> String {
        format!("{}by-service:{}", self.head, escape_component(service))
    }

    /// The index of a user's tasks.
    pub fn by_user(&self, user: &str) -> String {
        format!("{}by-user:{}", self.head, escape_component(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_keys_of_different_tuples_never_collide() {
        let a = TaskKeys::new("a:b");
        let b = TaskKeys::new("a");
        assert_ne!(a.record("x"), b.record("b}:task:x"));
        assert_ne!(a.record("x"), b.record(":b}:task:x"));
        assert!(a.record("x").starts_with("{a%3Ab}:"));
    }
}
