//! Who holds what, for the subjects a write transaction read ahead ([`Tx::prefetch`]): the
//! rules count a holder's cards once per imported row, and one SQL count per row cost more
//! than all of the row's inserts together. A list is read from the database once, inside
//! the transaction, and then kept as the subject's records stand: every write made through
//! the transaction updates it (told the record's columns before and after), and there is no
//! other writer while it lasts (`BEGIN IMMEDIATE`), so a count from a list is the count SQL
//! would give.
//!
//! [`Tx::prefetch`]: fanzha_ledger::store::Tx::prefetch

use fanzha_ledger::store::{Columns, CountQuery, Field};
use fanzha_ledger::Kind;
use rustc_hash::FxHashMap;

/// A record as counts see it.
#[derive(Debug)]
struct Member {
    key: Box<str>,
    subtype: Option<Name>,
    state: Option<Name>,
}

/// A sub-type or state: a handful of words shared by every member (see [`Names`]).
type Name = std::rc::Rc<str>;

/// The known lists of one transaction: (kind, field) → value → the records found under it.
/// Fx-hashed: the values are keyed hashes, which nobody without the key can steer into
/// collisions, and SipHash's flooding protection cost an import more than the lookups.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    lists: FxHashMap<(Kind, Field), FxHashMap<String, Vec<Member>>>,
    names: Names,
}

/// The sub-types and states met so far, each allocated once.
#[derive(Debug, Default)]
struct Names(Vec<Name>);

impl Names {
    /// `word` as a shared [`Name`].
    fn get(&mut self, word: &str) -> Name {
        if let Some(n) = self.0.iter().find(|n| &***n == word) {
            return n.clone();
        }
        let n: Name = word.into();
        self.0.push(n.clone());
        n
    }
}

const FIELDS: [Field; 2] = [Field::HolderHash, Field::Unit];

fn value_of<'a>(c: &Columns<'a>, field: Field) -> Option<&'a str> {
    match field {
        Field::HolderHash => c.holder_hash,
        Field::Unit => c.unit,
    }
}

impl Holdings {
    /// Whether any list is known (if not, writes need not be followed).
    pub(crate) fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Whether the list of `value` under (`kind`, `field`) is known.
    pub(crate) fn knows(&self, kind: Kind, field: Field, value: &str) -> bool {
        self.lists
            .get(&(kind, field))
            .is_some_and(|m| m.contains_key(value))
    }

    /// Learns the list of `value` under (`kind`, `field`) as read in the transaction:
    /// `(key, subtype, state)` of every record with that value. A list already known is
    /// kept (it has the transaction's writes since).
    pub(crate) fn learn(
        &mut self,
        kind: Kind,
        field: Field,
        value: &str,
        records: Vec<(String, Option<String>, Option<String>)>,
    ) {
        if self.knows(kind, field, value) {
            return;
        }
        let list = records
            .into_iter()
            .map(|(key, subtype, state)| Member {
                key: key.into(),
                subtype: subtype.map(|s| self.names.get(&s)),
                state: state.map(|s| self.names.get(&s)),
            })
            .collect();
        self.lists
            .entry((kind, field))
            .or_default()
            .insert(value.to_string(), list);
    }

    /// A record written in the transaction whose columns were `before` (None when it is
    /// new): it leaves the lists of its old values and joins the known lists of its new
    /// ones, with its new sub-type and state.
    pub(crate) fn wrote(&mut self, c: &Columns<'_>, before: Option<&Columns<'_>>) {
        for field in FIELDS {
            let lists = self.lists.get_mut(&(c.kind, field));
            if let Some(members) = before
                .and_then(|b| value_of(b, field))
                .and_then(|old| lists?.get_mut(old))
            {
                members.retain(|m| &*m.key != c.key);
            }
            let lists = self.lists.get_mut(&(c.kind, field));
            if let Some(members) = value_of(c, field).and_then(|v| lists?.get_mut(v)) {
                members.push(Member {
                    key: c.key.into(),
                    subtype: c.subtype.map(|s| self.names.get(s)),
                    state: c.state.map(|s| self.names.get(s)),
                });
            }
        }
    }

    /// The answer to `q`, when its list is known.
    pub(crate) fn count(&self, q: &CountQuery<'_>) -> Option<u64> {
        let list = self.lists.get(&(q.kind, q.field))?.get(q.value)?;
        let n = list
            .iter()
            .filter(|m| q.subtype.is_none() || m.subtype.as_deref() == q.subtype)
            .filter(|m| m.state.as_deref().unwrap_or("") != q.exclude_state)
            .filter(|m| &*m.key != q.exclude_key)
            .count();
        Some(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card<'a>(key: &'a str, holder: Option<&'a str>, state: &'a str) -> Columns<'a> {
        Columns {
            kind: Kind::Subscribers,
            key,
            holder_hash: holder,
            unit: None,
            subtype: Some("mobile"),
            state: Some(state),
        }
    }

    fn active_cards(h: &Holdings, holder: &str) -> Option<u64> {
        h.count(&CountQuery::active_mobile_cards(holder, ""))
    }

    #[test]
    fn lists_follow_writes_and_unknown_subjects_stay_unanswered() {
        let mut h = Holdings::default();
        // Before anything is known, writes are not tracked and counts are not answered.
        h.wrote(&card("k0", Some("a"), "active"), None);
        assert_eq!(active_cards(&h, "a"), None);
        let row = |k: &str, s: &str| (k.to_string(), Some("mobile".to_string()), Some(s.into()));
        h.learn(
            Kind::Subscribers,
            Field::HolderHash,
            "a",
            vec![row("k0", "active"), row("k1", "terminated")],
        );
        h.learn(Kind::Subscribers, Field::HolderHash, "b", vec![]);
        assert_eq!(active_cards(&h, "a"), Some(1));
        assert_eq!(active_cards(&h, "b"), Some(0));
        assert_eq!(active_cards(&h, "c"), None);
        // Learning again keeps what the transaction wrote since.
        h.wrote(&card("k2", Some("a"), "active"), None);
        h.learn(Kind::Subscribers, Field::HolderHash, "a", vec![]);
        assert_eq!(active_cards(&h, "a"), Some(2));
        // A card moves from a to b, another is reactivated, one leaves holders altogether.
        h.wrote(
            &card("k0", Some("b"), "active"),
            Some(&card("k0", Some("a"), "active")),
        );
        assert_eq!(
            (active_cards(&h, "a"), active_cards(&h, "b")),
            (Some(1), Some(1))
        );
        h.wrote(
            &card("k1", Some("a"), "suspended"),
            Some(&card("k1", Some("a"), "terminated")),
        );
        assert_eq!(active_cards(&h, "a"), Some(2));
        h.wrote(
            &card("k2", None, "active"),
            Some(&card("k2", Some("a"), "active")),
        );
        assert_eq!(active_cards(&h, "a"), Some(1));
        // Written twice, counted once; the record being rewritten is left out.
        h.wrote(
            &card("k1", Some("a"), "active"),
            Some(&card("k1", Some("a"), "suspended")),
        );
        assert_eq!(active_cards(&h, "a"), Some(1));
        let q = CountQuery::active_mobile_cards("a", "k1");
        assert_eq!(h.count(&q), Some(0));
        // Another kind's list of the same value is another list.
        assert_eq!(
            h.count(&CountQuery {
                kind: Kind::Units,
                ..q
            }),
            None
        );
    }
}
