//! The 28 permission keys, the 7 modules they belong to, and [`KeySet`], a bitset of keys.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// One of the seven modules that group the permission keys.
///
/// Serialized as its `snake_case` name (`"teacher_requests"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Announcements and messages to members.
    Communications,
    /// Budgets, expenses and their approval.
    Budget,
    /// Events and their volunteers.
    Events,
    /// Fundraising campaigns.
    Fundraising,
    /// Shared documents.
    Documents,
    /// Requests from teachers to the organization.
    TeacherRequests,
    /// The organization's members (`users.*` keys).
    UserManagement,
}

impl Module {
    /// All modules, in catalog order.
    pub const ALL: [Self; 7] = [
        Self::Communications,
        Self::Budget,
        Self::Events,
        Self::Fundraising,
        Self::Documents,
        Self::TeacherRequests,
        Self::UserManagement,
    ];

    /// The `snake_case` name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Communications => "communications",
            Self::Budget => "budget",
            Self::Events => "events",
            Self::Fundraising => "fundraising",
            Self::Documents => "documents",
            Self::TeacherRequests => "teacher_requests",
            Self::UserManagement => "user_management",
        }
    }

    /// Parses a `snake_case` module name; same as [`str::parse`].
    ///
    /// # Errors
    /// [`UnknownModuleError`] when the name is not one of the seven modules.
    pub fn parse(name: &str) -> Result<Self, UnknownModuleError> {
        Self::ALL
            .into_iter()
            .find(|module| module.as_str() == name)
            .ok_or_else(|| UnknownModuleError {
                name: name.to_owned(),
            })
    }

    /// The keys of this module, as a set.
    #[must_use]
    pub fn keys(self) -> KeySet {
        PermissionKey::ALL
            .into_iter()
            .filter(|key| key.module() == self)
            .collect()
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Module {
    type Err = UnknownModuleError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

/// A module name that is not one of the seven modules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission module `{name}`")]
pub struct UnknownModuleError {
    /// The name that was given.
    pub name: String,
}

/// A permission key string that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission key `{key}`")]
pub struct UnknownKeyError {
    /// The key that was given.
    pub key: String,
}

/// Defines [`PermissionKey`] from one table, so that the variant, its dotted name and its
/// module cannot drift apart.
macro_rules! permission_keys {
    ($($variant:ident => $name:literal in $module:ident,)*) => {
        /// One of the 28 configurable permissions, e.g. `communications.view`.
        ///
        /// Serialized as its dotted name. [`index`](Self::index) is dense (`0..28`), so
        /// per-key tables are plain arrays.
        ///
        /// ```
        /// use permissions::{Module, PermissionKey};
        ///
        /// let key: PermissionKey = "communications.view".parse()?;
        /// assert_eq!(key, PermissionKey::CommunicationsView);
        /// assert_eq!(key.as_str(), "communications.view");
        /// assert_eq!(key.module(), Module::Communications);
        /// assert_eq!(PermissionKey::ALL[key.index()], key);
        /// assert!("communications.fly".parse::<PermissionKey>().is_err());
        /// # Ok::<(), permissions::UnknownKeyError>(())
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum PermissionKey {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl PermissionKey {
            /// All keys, in catalog order (`ALL[k.index()] == k`).
            pub const ALL: [Self; Self::COUNT] = [$(Self::$variant,)*];

            /// The dotted name, e.g. `"budget.approve"`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The module the key belongs to.
            #[must_use]
            pub const fn module(self) -> Module {
                match self {
                    $(Self::$variant => Module::$module,)*
                }
            }

            /// Parses a dotted key name; same as [`str::parse`].
            ///
            /// # Errors
            /// [`UnknownKeyError`] when the name is not in the catalog.
            pub fn parse(name: &str) -> Result<Self, UnknownKeyError> {
                match name {
                    $($name => Ok(Self::$variant),)*
                    _ => Err(UnknownKeyError { key: name.to_owned() }),
                }
            }
        }
    };
}

permission_keys! {
    CommunicationsView => "communications.view" in Communications,
    CommunicationsCreate => "communications.create" in Communications,
    CommunicationsSend => "communications.send" in Communications,
    CommunicationsDelete => "communications.delete" in Communications,
    BudgetView => "budget.view" in Budget,
    BudgetCreate => "budget.create" in Budget,
    BudgetEdit => "budget.edit" in Budget,
    BudgetDelete => "budget.delete" in Budget,
    BudgetApprove => "budget.approve" in Budget,
    EventsView => "events.view" in Events,
    EventsCreate => "events.create" in Events,
    EventsEdit => "events.edit" in Events,
    EventsDelete => "events.delete" in Events,
    EventsManageVolunteers => "events.manage_volunteers" in Events,
    FundraisingView => "fundraising.view" in Fundraising,
    FundraisingCreate => "fundraising.create" in Fundraising,
    FundraisingEdit => "fundraising.edit" in Fundraising,
    FundraisingManage => "fundraising.manage" in Fundraising,
    DocumentsView => "documents.view" in Documents,
    DocumentsUpload => "documents.upload" in Documents,
    DocumentsDelete => "documents.delete" in Documents,
    TeacherRequestsView => "teacher_requests.view" in TeacherRequests,
    TeacherRequestsCreate => "teacher_requests.create" in TeacherRequests,
    TeacherRequestsFulfill => "teacher_requests.fulfill" in TeacherRequests,
    UsersView => "users.view" in UserManagement,
    UsersInvite => "users.invite" in UserManagement,
    UsersEditRoles => "users.edit_roles" in UserManagement,
    UsersRemove => "users.remove" in UserManagement,
}

impl PermissionKey {
    /// The number of keys in the catalog.
    pub const COUNT: usize = 28;

    /// The key's position in [`PermissionKey::ALL`], in `0..28`.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The single-key bit used by [`KeySet`].
    const fn bit(self) -> u32 {
        1 << self.index()
    }
}

impl fmt::Display for PermissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for PermissionKey {
    type Err = UnknownKeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

impl Serialize for PermissionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PermissionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = PermissionKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a permission key such as \"communications.view\"")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<PermissionKey, E> {
                PermissionKey::parse(name).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A set of permission keys, stored as one `u32` bit per key.
///
/// Copy, allocation-free, and serialized as a JSON list of dotted key names.
///
/// ```
/// use permissions::{KeySet, PermissionKey};
///
/// let mut keys = KeySet::new();
/// assert!(keys.insert(PermissionKey::BudgetApprove));
/// assert!(!keys.insert(PermissionKey::BudgetApprove));
/// assert!(keys.contains(PermissionKey::BudgetApprove));
/// assert_eq!(keys.len(), 1);
/// assert_eq!(keys.iter().collect::<Vec<_>>(), [PermissionKey::BudgetApprove]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeySet {
    bits: u32,
}

impl KeySet {
    /// The bits of all 28 keys.
    const ALL_BITS: u32 = (1 << PermissionKey::COUNT) - 1;

    /// The empty set.
    #[must_use]
    pub const fn new() -> Self {
        Self { bits: 0 }
    }

    /// The set of all 28 keys.
    #[must_use]
    pub const fn all() -> Self {
        Self {
            bits: Self::ALL_BITS,
        }
    }

    /// Adds `key`; returns whether it was not already present.
    pub const fn insert(&mut self, key: PermissionKey) -> bool {
        let added = self.bits & key.bit() == 0;
        self.bits |= key.bit();
        added
    }

    /// Removes `key`; returns whether it was present.
    pub const fn remove(&mut self, key: PermissionKey) -> bool {
        let present = self.contains(key);
        self.bits &= !key.bit();
        present
    }

    /// Whether `key` is in the set.
    #[must_use]
    pub const fn contains(self, key: PermissionKey) -> bool {
        self.bits & key.bit() != 0
    }

    /// The number of keys in the set.
    #[must_use]
    pub const fn len(self) -> usize {
        self.bits.count_ones() as usize
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The keys in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self {
            bits: self.bits & other.bits,
        }
    }

    /// The keys in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self {
            bits: self.bits | other.bits,
        }
    }

    /// The keys in `self` but not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self {
            bits: self.bits & !other.bits,
        }
    }

    /// The keys, in catalog order.
    #[must_use]
    pub const fn iter(self) -> KeySetIter {
        KeySetIter {
            remaining: self.bits,
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(PermissionKey::as_str))
            .finish()
    }
}

impl FromIterator<PermissionKey> for KeySet {
    fn from_iter<I: IntoIterator<Item = PermissionKey>>(keys: I) -> Self {
        let mut set = Self::new();
        set.extend(keys);
        set
    }
}

impl Extend<PermissionKey> for KeySet {
    fn extend<I: IntoIterator<Item = PermissionKey>>(&mut self, keys: I) {
        for key in keys {
            self.insert(key);
        }
    }
}

impl IntoIterator for KeySet {
    type Item = PermissionKey;
    type IntoIter = KeySetIter;

    fn into_iter(self) -> KeySetIter {
        self.iter()
    }
}

impl Serialize for KeySet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for KeySet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyListVisitor;

        impl<'de> Visitor<'de> for KeyListVisitor {
            type Value = KeySet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of permission keys")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeySet, A::Error> {
                let mut set = KeySet::new();
                while let Some(key) = seq.next_element::<PermissionKey>()? {
                    set.insert(key);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(KeyListVisitor)
    }
}

/// Iterator over the keys of a [`KeySet`], in catalog order.
#[derive(Debug, Clone)]
pub struct KeySetIter {
    remaining: u32,
}

impl Iterator for KeySetIter {
    type Item = PermissionKey;

    fn next(&mut self) -> Option<PermissionKey> {
        if self.remaining == 0 {
            return None;
        }
        let index = self.remaining.trailing_zeros() as usize;
        self.remaining &= self.remaining - 1;
        PermissionKey::ALL.get(index).copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.remaining.count_ones() as usize;
        (len, Some(len))
    }
}

impl ExactSizeIterator for KeySetIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_dense_and_matches_all() {
        for (position, key) in PermissionKey::ALL.into_iter().enumerate() {
            assert_eq!(key.index(), position);
        }
    }

    #[test]
    fn every_key_round_trips_through_its_name() {
        for key in PermissionKey::ALL {
            assert_eq!(PermissionKey::parse(key.as_str()), Ok(key));
            let json = serde_json::to_string(&key).expect("serialize");
            assert_eq!(json, format!("\"{}\"", key.as_str()));
            assert_eq!(
                serde_json::from_str::<PermissionKey>(&json).expect("deserialize"),
                key
            );
        }
    }

    #[test]
    fn names_start_with_their_module_prefix() {
        for key in PermissionKey::ALL {
            let prefix = match key.module() {
                Module::UserManagement => "users",
                module => module.as_str(),
            };
            assert!(key.as_str().starts_with(&format!("{prefix}.")), "{key}");
        }
    }

    #[test]
    fn modules_partition_the_keys_as_in_the_spec() {
        let sizes: Vec<usize> = Module::ALL
            .iter()
            .map(|module| module.keys().len())
            .collect();
        assert_eq!(sizes, [4, 5, 5, 4, 3, 3, 4]);
        let union = Module::ALL
            .into_iter()
            .fold(KeySet::new(), |all, module| all.union(module.keys()));
        assert_eq!(union, KeySet::all());
        for module in Module::ALL {
            assert_eq!(Module::parse(module.as_str()), Ok(module));
        }
    }

    #[test]
    fn unknown_key_is_a_parse_error() {
        let error = "budget.steal"
            .parse::<PermissionKey>()
            .expect_err("unknown");
        assert_eq!(
            error,
            UnknownKeyError {
                key: "budget.steal".to_owned()
            }
        );
        assert_eq!(error.to_string(), "unknown permission key `budget.steal`");
        assert!("".parse::<PermissionKey>().is_err());
        assert!("Communications.View".parse::<PermissionKey>().is_err());
        assert!(serde_json::from_str::<PermissionKey>("\"budget.steal\"").is_err());
        assert!("teleport".parse::<Module>().is_err());
    }

    #[test]
    fn key_set_operations() {
        let mut set = KeySet::new();
        assert!(set.is_empty());
        assert!(set.insert(PermissionKey::UsersRemove));
        assert!(set.insert(PermissionKey::CommunicationsView));
        assert!(!set.insert(PermissionKey::UsersRemove));
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [
                PermissionKey::CommunicationsView,
                PermissionKey::UsersRemove
            ]
        );
        assert!(set.remove(PermissionKey::UsersRemove));
        assert!(!set.remove(PermissionKey::UsersRemove));
        assert!(!set.contains(PermissionKey::UsersRemove));
        assert_eq!(KeySet::all().len(), 28);
        assert_eq!(KeySet::all().iter().len(), 28);
        assert_eq!(
            KeySet::all().difference(Module::Budget.keys()).len(),
            28 - 5
        );
        assert_eq!(
            Module::Budget.keys().intersection(Module::Events.keys()),
            KeySet::new()
        );
    }

    #[test]
    fn key_set_serializes_as_a_list_of_names() {
        let set: KeySet = [PermissionKey::BudgetApprove, PermissionKey::EventsView]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&set).expect("serialize");
        assert_eq!(json, r#"["budget.approve","events.view"]"#);
        let back: KeySet = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, set);
        assert!(serde_json::from_str::<KeySet>(r#"["budget.nope"]"#).is_err());
        assert_eq!(format!("{set:?}"), r#"{"budget.approve", "events.view"}"#);
    }
}
