//! `counters!`: declares a role's counters as a plain `Copy` struct of `u64` fields plus a
//! table of (name, value) for printing and QoS, so the list is written once.

/// Declares a counters struct: every field a documented `u64`, and `table()` listing them.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $name {
            /// Every counter as (name, value), in declaration order.
            pub fn table(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
                [ $( (stringify!($field), self.$field), )* ].into_iter()
            }
        }
    };
}
