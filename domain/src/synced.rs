//! Synced models: a serde struct bound to the key `{TypeName}:{id}`, kept
//! there in one of two [`ModelLayout`]s: a Redis hash with a field per
//! model field (the default: what Python's pydantic-state writes), or one
//! JSON string.
//!
//! The key is written verbatim, without escaping, because Python services
//! write these keys today as `f"{Type}:{id}"`; escaping the id would put a
//! Rust service and a Python service on different keys. What keeps two
//! models apart is that a type name never contains `:` (checked here), so
//! the first `:` of a key ends the type name and `Order` id `a:b` can never
//! be confused with a type `Order:a` id `b`. The id is any valid key text
//! (not empty, no control characters, the whole key at most
//! [`MAX_KEY_BYTES`] bytes); glob characters in it are ordinary characters.

use crate::{Key, MAX_KEY_BYTES, ValidationError, validate_identifier};

/// How a synced model is stored under its key.
///
/// Loading detects the layout a key holds (by its Redis type) and keeps it
/// on every write; the layout chosen for a model type
/// ([`SyncedModel::LAYOUT`], or a builder option of the facade) only says
/// how a model that does not exist yet is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ModelLayout {
    /// A Redis hash, one field per model field (`HSET key field value`),
    /// the layout of Python's pydantic-state (`BaseRedisStateModel`).
    /// Changing a field writes that field alone.
    #[default]
    Hash,
    /// One JSON string (`SET key '{"field":…}'`), as documents are stored.
    Json,
}

impl ModelLayout {
    /// `"hash"` or `"json"`, as the CLI and the docs name them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Json => "json",
        }
    }
}

impl std::fmt::Display for ModelLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model kept under `{TypeName}:{id}`, shared between services.
///
/// The serde and `Default` bounds are the facade's (`statehouse::Synced`);
/// this trait only says where the model lives, in which layout a new one is
/// written, and what a valid one is.
///
/// ```
/// use statehouse_domain::SyncedModel;
///
/// #[derive(Default)]
/// struct Order { id: String, total: i64 }
///
/// impl SyncedModel for Order {
///     fn id(&self) -> String { self.id.clone() }
///     fn set_id(&mut self, id: &str) { self.id = id.to_owned(); }
///     fn validate(&self) -> Result<(), String> {
///         if self.total < 0 { Err("total must not be negative".into()) } else { Ok(()) }
///     }
/// }
///
/// assert_eq!(Order::type_name(), "Order");
/// assert_eq!(Order::LAYOUT, statehouse_domain::ModelLayout::Hash);
/// assert_eq!(statehouse_domain::synced_key::<Order>("7").unwrap().as_str(), "Order:7");
/// ```
pub trait SyncedModel {
    /// The layout a new model of this type is written in: a hash of fields
    /// by default (what Python's pydantic-state writes); set
    /// `const LAYOUT: ModelLayout = ModelLayout::Json;` for one JSON
    /// string. A key that already holds a model keeps its layout.
    const LAYOUT: ModelLayout = ModelLayout::Hash;

    /// The type name in the key: by default the last path segment of the
    /// Rust type, without generic arguments (`shop::Order<X>` -> `Order`).
    /// Override it to match the name another service uses (a Python class
    /// name, a renamed type). It must not be empty or contain `:` or
    /// control characters.
    ///
    /// (A function rather than an associated `const`: the Rust type's name
    /// is not available in constant evaluation on stable Rust.)
    fn type_name() -> &'static str {
        last_path_segment(std::any::type_name::<Self>())
    }

    /// The model's id, as stored in the model.
    fn id(&self) -> String;

    /// Puts `id` into a fresh model (`Default::default()`), when the
    /// model does not exist yet. The default does nothing: override it
    /// if the model carries its id as a field.
    fn set_id(&mut self, id: &str) {
        let _ = id;
    }

    /// Checks a changed model before it is written: `Err(reason)` rejects
    /// the change, and nothing is written. The default accepts everything.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// `a::b::Name<c::D>` -> `Name`.
fn last_path_segment(type_name: &'static str) -> &'static str {
    let base = match type_name.find('<') {
        Some(at) => &type_name[..at],
        None => type_name,
    };
    match base.rfind("::") {
        Some(at) => &base[at + 2..],
        None => base,
    }
}

/// Checks a synced model's type name: not empty, no control characters,
/// no `:`.
pub fn validate_type_name(type_name: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "synced model type name";
    validate_identifier(WHAT, type_name, MAX_KEY_BYTES)?;
    match type_name.find(':') {
        Some(index) => Err(ValidationError::ReservedCharacter {
            what: WHAT,
            character: ':',
            index,
        }),
        None => Ok(()),
    }
}

/// The key of model `id` of type `T`: `{T::type_name()}:{id}`, verbatim.
pub fn synced_key<T: SyncedModel + ?Sized>(id: &str) -> Result<Key, ValidationError> {
    synced_key_of(T::type_name(), id)
}

/// The key of model `id` of the type named `type_name` (as the CLI names
/// it): `{type_name}:{id}`, verbatim.
pub fn synced_key_of(type_name: &str, id: &str) -> Result<Key, ValidationError> {
    validate_type_name(type_name)?;
    validate_identifier("synced model id", id, MAX_KEY_BYTES)?;
    Key::new(format!("{type_name}:{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;
    impl SyncedModel for Plain {
        fn id(&self) -> String {
            String::new()
        }
    }

    struct Generic<T>(T);
    impl<T> SyncedModel for Generic<T> {
        fn id(&self) -> String {
            String::new()
        }
    }

    struct Renamed;
    impl SyncedModel for Renamed {
        const LAYOUT: ModelLayout = ModelLayout::Json;
        fn type_name() -> &'static str {
            "LegacyOrder"
        }
        fn id(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn type_names_are_the_last_path_segment_unless_overridden() {
        assert_eq!(Plain::type_name(), "Plain");
        assert_eq!(Generic::<Vec<u8>>::type_name(), "Generic");
        assert_eq!(Renamed::type_name(), "LegacyOrder");
        assert_eq!(
            (Plain::LAYOUT, Renamed::LAYOUT),
            (ModelLayout::Hash, ModelLayout::Json)
        );
        assert_eq!(ModelLayout::default().to_string(), "hash");
        assert_eq!(Generic(Plain).0.id(), "");
    }

    #[test]
    fn keys_are_verbatim_and_validated() {
        assert_eq!(synced_key::<Plain>("a:b*").unwrap().as_str(), "Plain:a:b*");
        assert_eq!(
            synced_key::<Plain>(""),
            Err(ValidationError::Empty {
                what: "synced model id"
            })
        );
        assert!(matches!(
            synced_key::<Plain>("a\nb"),
            Err(ValidationError::ControlCharacter { index: 1, .. })
        ));
        assert_eq!(
            synced_key_of("Order:x", "1").unwrap_err().to_string(),
            "synced model type name must not contain ':' (found at byte 5)"
        );
        assert!(matches!(
            synced_key::<Plain>(&"x".repeat(MAX_KEY_BYTES)),
            Err(ValidationError::TooLong { what: "key", .. })
        ));
    }
}
