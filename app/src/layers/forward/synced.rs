use statehouse_domain::{Key, ModelLayout};
use statehouse_ports::{Boxed, ModelFn, ModelUpdated, RetryPolicy, StoredModel, SyncedStore};

use super::{Layer, Layered, Op};

/// The key a synced-model call names: the model's key; `attempts` for
/// `update_model`. Idempotent: `load_model`, and `write_fields` (setting
/// and deleting the same fields again changes nothing more). Not:
/// `update_model` (it runs the caller's closure), `delete_model` (its
/// answer could lie).
impl<L: Layer, S: SyncedStore> SyncedStore for Layered<L, S> {
    fn load_model<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, Option<StoredModel>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("load_model", key), || self.inner.load_model(key))
    }

    fn write_fields<'s, 'k, 'v, 'd, 'f>(
        &'s self,
        key: &'k Key,
        set: &'v [(String, Vec<u8>)],
        delete: &'d [String],
    ) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        'd: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("write_fields", key), move || {
                self.inner.write_fields(key, set, delete)
            })
    }

    fn update_model<'a, 's, 'k, 'u, 'f>(
        &'s self,
        key: &'k Key,
        expected: ModelLayout,
        policy: RetryPolicy,
        f: &'u mut ModelFn<'a>,
    ) -> Boxed<'f, ModelUpdated>
    where
        'a: 'f,
        's: 'f,
        'k: 'f,
        'u: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("update_model", key).counting(|updated: &ModelUpdated| updated.attempts),
            self.inner.update_model(key, expected, policy, f),
        )
    }

    fn delete_model<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("delete_model", key), self.inner.delete_model(key))
    }
}
