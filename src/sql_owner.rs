//! SQL has one owner (ARCHITECTURE.md, "Invariants"): only `store` names `rusqlite`, so
//! every query of the mirror is a named method of `Store` and its text lives in
//! `src/store/`; only `replica` names `tokio_postgres`, the client of the PostgreSQL
//! replica (its SQL is PostgreSQL's, never the mirror's). Checked on the shipped code with
//! `syn`, through the file walk of the arrow test; `#[cfg(test)]` items and test-only
//! modules may name either (a test reads a mirror with its own connection).

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

use crate::arrows::{is_test_only, item_attrs, shipped_files};

/// `(crate, the one top-level module that may name it)`.
const OWNERS: &[(&str, &str)] = &[
    ("rusqlite", "store"),
    ("libsqlite3_sys", "store"),
    ("tokio_postgres", "replica"),
];

/// The one exception, by module: `(module, crate, why)`. An entry no file needs any more
/// fails the test, so the list never outlives its reason.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "config",
    "tokio_postgres",
    "`[replica.postgres] url` is read with the driver's own URL parser when the config is \
     loaded, so a config that loads is one the replica can connect with; no SQL",
)];

/// The owned crates `module`'s shipped code in `source` names, each once, in order.
fn owned_crates_named(module: &str, source: &str) -> Result<Vec<&'static str>, syn::Error> {
    let file = syn::parse_file(source)?;
    let mut named = Vec::new();
    for item in &file.items {
        visit_item(item, &mut |tokens| idents_in(tokens, &mut named));
    }
    Ok(OWNERS
        .iter()
        .filter(|(krate, owner)| *owner != module && named.iter().any(|n| n == krate))
        .map(|(krate, _)| *krate)
        .collect())
}

/// Calls `f` with the tokens of `item` outside its `#[cfg(test)]` parts.
fn visit_item(item: &syn::Item, f: &mut dyn FnMut(TokenStream)) {
    if is_test_only(item_attrs(item)) {
        return;
    }
    match item {
        syn::Item::Mod(syn::ItemMod {
            content: Some((_, items)),
            ..
        }) => {
            for item in items {
                visit_item(item, f);
            }
        }
        syn::Item::Impl(i) => {
            f(i.self_ty.to_token_stream());
            if let Some((_, path, _)) = &i.trait_ {
                f(path.to_token_stream());
            }
            for impl_item in &i.items {
                let attrs = match impl_item {
                    syn::ImplItem::Const(c) => &c.attrs,
                    syn::ImplItem::Fn(m) => &m.attrs,
                    syn::ImplItem::Type(t) => &t.attrs,
                    _ => continue,
                };
                if !is_test_only(attrs) {
                    f(impl_item.to_token_stream());
                }
            }
        }
        other => f(other.to_token_stream()),
    }
}

fn idents_in(tokens: TokenStream, named: &mut Vec<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(i) => {
                let i = i.to_string();
                if OWNERS.iter().any(|(krate, _)| *krate == i) && !named.contains(&i) {
                    named.push(i);
                }
            }
            TokenTree::Group(g) => idents_in(g.stream(), named),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn only_store_names_rusqlite_and_only_replica_tokio_postgres() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = shipped_files(&src.join("lib.rs"));
        files.extend(shipped_files(&src.join("main.rs")));
        assert!(
            files.iter().any(|f| f.module == "store") && files.iter().any(|f| f.module == "demo"),
            "the walk missed the library's modules"
        );
        let mut broken = Vec::new();
        let mut allowed_in_use = BTreeSet::new();
        for file in &files {
            let source = std::fs::read_to_string(&file.path).unwrap();
            for krate in owned_crates_named(&file.module, &source).unwrap() {
                match ALLOWED
                    .iter()
                    .find(|(m, k, _)| *m == file.module && *k == krate)
                {
                    Some(entry) => {
                        allowed_in_use.insert(entry.0);
                    }
                    None => broken.push(format!("{} names {krate}", file.path.display())),
                }
            }
        }
        assert!(
            broken.is_empty(),
            "SQL belongs to its owner (a named method of `Store`, or `replica` for PostgreSQL):\n{}",
            broken.join("\n")
        );
        let stale: Vec<_> = ALLOWED
            .iter()
            .filter(|(m, _, _)| !allowed_in_use.contains(m))
            .collect();
        assert!(
            stale.is_empty(),
            "exceptions no file needs any more: {stale:?}"
        );
    }

    #[test]
    fn the_checker_finds_the_driver_however_it_is_named() {
        let cases = [
            ("use rusqlite::Connection;", vec!["rusqlite"]),
            ("fn f(c: &::rusqlite::Connection) {}", vec!["rusqlite"]),
            (
                "fn f() { let _ = format!(\"{}\", rusqlite::version()); }",
                vec!["rusqlite"],
            ),
            ("impl rusqlite::ToSql for X {}", vec!["rusqlite"]),
            (
                "struct S { c: Option<tokio_postgres::Client> }",
                vec!["tokio_postgres"],
            ),
            (
                "mod inner { use libsqlite3_sys as ffi; }",
                vec!["libsqlite3_sys"],
            ),
            // Tests, and words in docs and strings, are not code that ships.
            (
                "#[cfg(test)] mod tests { use rusqlite::Connection; }",
                vec![],
            ),
            (
                "impl S { #[cfg(test)] fn c(&self) -> &rusqlite::Connection { todo!() } }",
                vec![],
            ),
            (
                "/// rusqlite is store's\nfn f() -> &'static str { \"rusqlite\" }",
                vec![],
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(
                owned_crates_named("export", source).unwrap(),
                expected,
                "{source}"
            );
        }
        assert!(owned_crates_named("store", "use rusqlite::Connection;")
            .unwrap()
            .is_empty());
        assert!(owned_crates_named("replica", "use tokio_postgres::Client;")
            .unwrap()
            .is_empty());
        assert_eq!(
            owned_crates_named("replica", "use rusqlite::Connection;").unwrap(),
            vec!["rusqlite"]
        );
    }
}
