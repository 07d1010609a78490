//! The arrows between modules that must never exist (ARCHITECTURE.md, "Dependencies"),
//! checked on the source: every file reached from `lib.rs` and `main.rs` through `mod`
//! declarations that are not `#[cfg(test)]`, read with Rust's own parser (`syn`), every
//! `crate::x` path in it — `use` trees, expressions, types, macro arguments — and every
//! `super::` path that leaves its top-level module, outside `#[cfg(test)]` items. Tests may reach anywhere (a `diff` test builds records from the
//! API's models); the rule is about the code that ships.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::TokenTree;
use syn::visit::Visit;

/// `(from, to)`: a module `from` must not name anything in module `to`.
const FORBIDDEN: &[(&str, &str)] = &[
    ("diff", "store"),
    ("diff", "api"),
    ("store", "api"),
    ("store", "sync"),
    ("api", "store"),
    ("daemon", "store"),
];

/// `fake` may name nothing outside itself: the fake server must not share the client's
/// models, or a change to them would change what the fake serves and hide the change.
const SELF_CONTAINED: &[&str] = &["fake"];

/// The one exception to a rule, by path: `(from, path prefix, why)`. An entry no arrow
/// needs any more fails the test, so the list never outlives its reason.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "fake",
    "crate::api::capture",
    "`fake-api --replay` serves back what `sync --capture` recorded: it reads the recording's \
     file format, never the client's models of the API",
)];

/// Whether the arrow `from → to` breaks a rule (before the allow-list).
fn is_forbidden(from: &str, to: &str) -> bool {
    if from == to {
        return false;
    }
    FORBIDDEN.contains(&(from, to)) || SELF_CONTAINED.contains(&from)
}

/// The top-level modules one file's shipped code names through `crate::` (or, in the
/// binary, `orgmirror::`) or through `super::` out of its own module, each with the first
/// path that names it. `module_path` is the file's place in the crate (`["store", "write"]`).
fn arrows_in(source: &str, module_path: &[String]) -> Result<Vec<(String, String)>, syn::Error> {
    let file = syn::parse_file(source)?;
    let mut paths = CratePaths {
        found: Vec::new(),
        here: module_path.to_vec(),
    };
    for item in &file.items {
        if !is_test_only(item_attrs(item)) {
            paths.visit_item(item);
        }
    }
    let mut seen = BTreeSet::new();
    Ok(paths
        .found
        .into_iter()
        .filter(|(module, _)| seen.insert(module.clone()))
        .collect())
}

struct CratePaths {
    found: Vec<(String, String)>,
    /// The module being read, from the crate root (inline modules pushed as they are entered).
    here: Vec<String>,
}

impl CratePaths {
    fn note(&mut self, segments: &[String]) {
        if let [root, module, ..] = segments {
            if root == "crate" || root == "orgmirror" {
                self.found.push((module.clone(), segments.join("::")));
            }
        }
        let ups = segments.iter().take_while(|s| *s == "super").count();
        if ups > 0 && ups <= self.here.len() {
            let above = &self.here[..self.here.len() - ups];
            let module = above.first().or_else(|| segments.get(ups));
            if let Some(module) = module {
                self.found.push((module.clone(), segments.join("::")));
            }
        }
    }

    /// `crate :: x` inside a macro's tokens (`tracing::info!(x = crate::y::z())`).
    fn note_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => self.note_tokens(group.stream()),
                TokenTree::Ident(root) if root == "crate" || root == "orgmirror" => {
                    if let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                    {
                        if a.as_char() == ':' && b.as_char() == ':' {
                            if let Some(TokenTree::Ident(module)) = tokens.get(i + 3) {
                                self.note(&[root.to_string(), module.to_string()]);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for CratePaths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        self.here.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.here.pop();
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Fn(f) => &f.attrs[..],
            syn::ImplItem::Const(c) => &c.attrs[..],
            syn::ImplItem::Type(t) => &t.attrs[..],
            _ => &[],
        };
        if !is_test_only(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        if item.leading_colon.is_none() {
            use_tree(&item.tree, &mut prefix, self);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.note_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

fn use_tree(tree: &syn::UseTree, prefix: &mut Vec<String>, paths: &mut CratePaths) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree(&p.tree, prefix, paths);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            prefix.push(n.ident.to_string());
            paths.note(prefix);
            prefix.pop();
        }
        syn::UseTree::Rename(r) => {
            prefix.push(r.ident.to_string());
            paths.note(prefix);
            prefix.pop();
        }
        syn::UseTree::Glob(_) => {
            prefix.push("*".to_string());
            paths.note(prefix);
            prefix.pop();
        }
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                use_tree(tree, prefix, paths);
            }
        }
    }
}

pub(crate) fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]` (or any `cfg` that names `test`, like `cfg(any(test, …))`).
pub(crate) fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .map(|l| {
                    l.tokens
                        .to_string()
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == "test")
                })
                .unwrap_or(false)
    })
}

/// One file of shipped code, the top-level module it belongs to and its place in the crate.
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) module: String,
    module_path: Vec<String>,
}

/// Every file reached from `root` through `mod x;` declarations that are not test-only.
pub(crate) fn shipped_files(root: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let dir = root
        .parent()
        .expect("a crate root has a directory")
        .to_path_buf();
    collect(root, &dir, &[], &mut files);
    files
}

fn collect(path: &Path, dir: &Path, module_path: &[String], files: &mut Vec<SourceFile>) {
    let source =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = syn::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(module) = module_path.first() {
        files.push(SourceFile {
            path: path.to_path_buf(),
            module: module.clone(),
            module_path: module_path.to_vec(),
        });
    }
    for item in &file.items {
        let syn::Item::Mod(m) = item else { continue };
        if m.content.is_some() || is_test_only(&m.attrs) {
            continue; // inline modules are read with their file
        }
        let name = m.ident.to_string();
        let explicit = m.attrs.iter().find_map(|a| {
            let syn::Meta::NameValue(nv) = &a.meta else {
                return None;
            };
            if !nv.path.is_ident("path") {
                return None;
            }
            match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            }
        });
        let (child, child_dir) = match explicit {
            // `#[path]` is relative to the declaring file's own directory.
            Some(p) => {
                let here = path.parent().unwrap_or(dir);
                (here.join(p), here.to_path_buf())
            }
            None => {
                let flat = dir.join(format!("{name}.rs"));
                if flat.exists() {
                    (flat, dir.join(&name))
                } else {
                    (dir.join(&name).join("mod.rs"), dir.join(&name))
                }
            }
        };
        let mut child_path = module_path.to_vec();
        child_path.push(name);
        collect(&child, &child_dir, &child_path, files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden_arrows_in(from: &str, source: &str) -> Vec<String> {
        let module_path: Vec<String> = from.split("::").map(str::to_string).collect();
        let from = module_path[0].as_str();
        arrows_in(source, &module_path)
            .unwrap()
            .into_iter()
            .filter(|(to, _)| is_forbidden(from, to))
            .map(|(to, path)| format!("{from} → {to} ({path})"))
            .collect()
    }

    #[test]
    fn no_module_has_a_forbidden_arrow() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = shipped_files(&src.join("lib.rs"));
        files.extend(shipped_files(&src.join("main.rs")));
        assert!(
            files.iter().any(|f| f.module == "store"),
            "the walk found no store"
        );
        let mut broken = Vec::new();
        let mut allowed_in_use = BTreeSet::new();
        for file in &files {
            let source = std::fs::read_to_string(&file.path).unwrap();
            let arrows = arrows_in(&source, &file.module_path).unwrap();
            for (to, path) in arrows {
                if !is_forbidden(&file.module, &to) {
                    continue;
                }
                if let Some(entry) = ALLOWED
                    .iter()
                    .find(|(f, prefix, _)| *f == file.module && path.starts_with(prefix))
                {
                    allowed_in_use.insert(*entry);
                    continue;
                }
                broken.push(format!(
                    "{} → {to}: {} names {path}",
                    file.module,
                    file.path.strip_prefix(&src).unwrap_or(&file.path).display()
                ));
            }
        }
        assert!(
            broken.is_empty(),
            "forbidden arrows:\n{}",
            broken.join("\n")
        );
        let stale: Vec<_> = ALLOWED
            .iter()
            .filter(|e| !allowed_in_use.contains(*e))
            .collect();
        assert!(
            stale.is_empty(),
            "allow-list entries no arrow needs any more (remove them): {stale:?}"
        );
    }

    #[test]
    fn the_checker_finds_an_arrow_however_it_is_written() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "store",
                "use crate::api::Quarantined;",
                &["store → api (crate::api::Quarantined)"],
            ),
            (
                "store",
                "use crate::{sync::{self, now_utc}, diff::Diff};",
                &["store → sync (crate::sync::self)"],
            ),
            (
                "store",
                "fn f() -> String { crate::sync::now_utc() }",
                &["store → sync (crate::sync::now_utc)"],
            ),
            (
                "store",
                "struct S { q: Vec<crate::api::Quarantined> }",
                &["store → api (crate::api::Quarantined)"],
            ),
            (
                "store",
                "fn f() { tracing::info!(at = %crate::sync::now_utc(), \"x\"); }",
                &["store → sync (crate::sync)"],
            ),
            (
                "daemon",
                "use crate::store::*;",
                &["daemon → store (crate::store::*)"],
            ),
            (
                "diff",
                "use crate::store::Store as S;",
                &["diff → store (crate::store::Store)"],
            ),
            (
                "api",
                "impl A { fn f(&self) { let _ = crate::store::Store::open; } }",
                &["api → store (crate::store::Store::open)"],
            ),
            (
                "fake",
                "use crate::config::Config;",
                &["fake → config (crate::config::Config)"],
            ),
            (
                "fake::server",
                "use super::org::Org; use crate::fake::api::X;",
                &[],
            ),
            // Out of a module through `super` (`from` is the file's place in the crate).
            (
                "store",
                "use super::api::Quarantined;",
                &["store → api (super::api::Quarantined)"],
            ),
            (
                "store::write",
                "fn f() -> String { super::super::sync::now_utc() }",
                &["store → sync (super::super::sync::now_utc)"],
            ),
            ("store::write", "use super::outbox::queue_run;", &[]),
            (
                "diff",
                "mod inner { use super::super::store::Store; }",
                &["diff → store (super::super::store::Store)"],
            ),
            (
                "diff",
                "mod inner { use super::snapshot::OrgSnapshot; }",
                &[],
            ),
            ("diff", "use crate::snapshot::OrgSnapshot;", &[]),
            ("sync", "use crate::store::Store;", &[]),
            // Shipped code only: test modules and test functions may reach anywhere.
            (
                "diff",
                "#[cfg(test)] mod tests { use crate::api::models::Team; }",
                &[],
            ),
            (
                "diff",
                "#[cfg(test)] fn helper() { crate::store::Store::open(); }",
                &[],
            ),
            (
                "store",
                "// crate::sync::now_utc() in a comment\nconst S: &str = \"crate::api::x\";",
                &[],
            ),
        ];
        for (from, source, expected) in cases {
            assert_eq!(
                &forbidden_arrows_in(from, source),
                expected,
                "{from}: {source}"
            );
        }
    }

    #[test]
    fn test_only_modules_are_not_walked() {
        let dir = std::env::temp_dir().join(format!("orgmirror-arrows-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("store")).unwrap();
        std::fs::write(
            dir.join("lib.rs"),
            "pub mod store;\n#[path = \"other_name.rs\"]\nmod renamed;",
        )
        .unwrap();
        std::fs::write(dir.join("store.rs"), "mod write;\n#[cfg(test)]\nmod tests;").unwrap();
        std::fs::write(dir.join("store/write.rs"), "").unwrap();
        std::fs::write(dir.join("store/tests.rs"), "use crate::api::X;").unwrap();
        std::fs::write(dir.join("other_name.rs"), "").unwrap();
        let walked: Vec<(String, String)> = shipped_files(&dir.join("lib.rs"))
            .into_iter()
            .map(|f| {
                let rel = f.path.strip_prefix(&dir).unwrap().display().to_string();
                (f.module, rel)
            })
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            walked,
            [
                ("store".to_string(), "store.rs".to_string()),
                ("store".to_string(), "store/write.rs".to_string()),
                ("renamed".to_string(), "other_name.rs".to_string()),
            ]
        );
    }
}
