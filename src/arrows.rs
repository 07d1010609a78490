//! The arrows between top-level modules (ARCHITECTURE.md, "Dependencies"), checked on the
//! source: every file reached from `lib.rs` and `main.rs` through `mod` declarations that
//! are not `#[cfg(test)]`, read with Rust's own parser (`syn`), every `crate::x` path in
//! it — `use` trees, expressions, types, macro arguments — and every `super::` path that
//! leaves its top-level module, outside `#[cfg(test)]` items. Tests may reach anywhere (a
//! `diff` test builds records from the API's models); the rules are about the code that
//! ships: no arrow that must never exist, no cycle, and ARCHITECTURE.md's picture of the
//! arrows and the modules' sizes as the code is.

use std::collections::{BTreeMap, BTreeSet};
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
    ("snapshot", "diff"),
    ("store", "snapshot"),
];

/// Modules that may name nothing outside themselves (but for `ALLOWED`): `model`, the
/// domain's vocabulary, which every layer names and which so names none; `config`, which
/// every feature reads. (The fake Focus API is a crate of its own, `crates/fake`, which
/// does not depend on this one: the compiler keeps it from the client's models.)
const SELF_CONTAINED: &[&str] = &["model", "config"];

/// The one exception to a rule, by path: `(from, path prefix, why)`. An entry no arrow
/// needs any more fails the test, so the list never outlives its reason.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "model",
    "crate::clock",
    "a timestamp is written as the clock formats it (`format_utc`)",
)];

/// Cycles between modules that may remain: `(cycle, why)`, each written as the test names
/// it (from its alphabetically first module). None does; an entry no cycle needs fails the
/// test, so the list never outlives its reason.
const ALLOWED_CYCLES: &[(&str, &str)] = &[];

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
    files_from(root, false)
}

/// Every file reached from `root` through `mod x;` declarations, test-only ones too.
fn every_file(root: &Path) -> Vec<SourceFile> {
    files_from(root, true)
}

fn files_from(root: &Path, with_tests: bool) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let dir = root
        .parent()
        .expect("a crate root has a directory")
        .to_path_buf();
    collect(root, &dir, &[], with_tests, &mut files);
    files
}

fn collect(
    path: &Path,
    dir: &Path,
    module_path: &[String],
    with_tests: bool,
    files: &mut Vec<SourceFile>,
) {
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
        if m.content.is_some() || (is_test_only(&m.attrs) && !with_tests) {
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
        collect(&child, &child_dir, &child_path, with_tests, files);
    }
}

/// The arrows between the top-level modules of the shipped code: `from → to → why`, the
/// first file and path that make each arrow. Every module the crates declare is a node
/// (with no arrows, too); a path to anything else (`crate::outln!`, the crate root's macro)
/// is no arrow, nor is a module naming itself.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The graph of `files`: `(place in the crate, file name for messages, source)`.
fn graph_of(files: &[(Vec<String>, String, String)]) -> Result<Graph, String> {
    let mut graph: Graph = files
        .iter()
        .filter_map(|(place, _, _)| place.first())
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (place, name, source) in files {
        let Some(from) = place.first() else { continue };
        let arrows = arrows_in(source, place).map_err(|e| format!("{name}: {e}"))?;
        let out = graph.entry(from.clone()).or_default();
        for (to, path) in arrows {
            if to != *from && modules.contains(&to) {
                out.entry(to)
                    .or_insert_with(|| format!("{name} names {path}"));
            }
        }
    }
    Ok(graph)
}

/// The graph of the code under `src` (the library and the binary).
fn module_graph(src: &Path) -> Graph {
    graph_of(&shipped_sources(src)).unwrap_or_else(|e| panic!("{e}"))
}

/// The shipped files under `src` as [`graph_of`] takes them.
fn shipped_sources(src: &Path) -> Vec<(Vec<String>, String, String)> {
    let mut files = shipped_files(&src.join("lib.rs"));
    files.extend(shipped_files(&src.join("main.rs")));
    files
        .into_iter()
        .map(|f| {
            let source = std::fs::read_to_string(&f.path)
                .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
            let name = f.path.strip_prefix(src).unwrap_or(&f.path).display();
            (f.module_path, format!("src/{name}"), source)
        })
        .collect()
}

/// Each module's size in lines: every `.rs` file of it reached through `mod`, its tests
/// included, counted as `wc -l` counts.
fn module_sizes(src: &Path) -> BTreeMap<String, usize> {
    let mut files = every_file(&src.join("lib.rs"));
    files.extend(every_file(&src.join("main.rs")));
    let mut sizes = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f.path)
            .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
        *sizes.entry(f.module).or_default() += text.lines().count();
    }
    sizes
}

/// The strongly connected components of `graph` (Tarjan's algorithm): each module's
/// component, numbered so that a component's arrows lead only to lower numbers or itself.
fn components(graph: &Graph) -> BTreeMap<&str, usize> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        component: BTreeMap<&'g str, usize>,
        count: usize,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, node: &'g str) {
            let i = self.index.len();
            self.index.insert(node, i);
            self.low.insert(node, i);
            self.stack.push(node);
            for next in self.graph[node].keys() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if !self.component.contains_key(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                while let Some(top) = self.stack.pop() {
                    self.component.insert(top, self.count);
                    if top == node {
                        break;
                    }
                }
                self.count += 1;
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        component: BTreeMap::new(),
        count: 0,
    };
    for node in graph.keys() {
        if !t.index.contains_key(node.as_str()) {
            t.visit(node);
        }
    }
    t.component
}

/// Every cycle of `graph` through distinct modules, each written from its alphabetically
/// first module and back to it: `commands → sync → replica → commands`.
fn cycles(graph: &Graph) -> Vec<String> {
    let component = components(graph);
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut path = vec![start.as_str()];
        cycles_from(graph, &component, &mut path, &mut found);
    }
    found
}

fn cycles_from<'g>(
    graph: &'g Graph,
    component: &BTreeMap<&str, usize>,
    path: &mut Vec<&'g str>,
    found: &mut Vec<String>,
) {
    let (start, at) = (path[0], path[path.len() - 1]);
    for next in graph[at].keys().map(String::as_str) {
        if next == start {
            found.push(format!("{} → {start}", path.join(" → ")));
        } else if next > start && component[next] == component[start] && !path.contains(&next) {
            path.push(next);
            cycles_from(graph, component, path, found);
            path.pop();
        }
    }
}

/// The cycles of `graph` not in `allowed`, each with the paths that make its arrows, and
/// the entries of `allowed` no cycle needs any more; `Ok` when there are none of either.
fn check_cycles(graph: &Graph, allowed: &[(&str, &str)]) -> Result<(), String> {
    let found = cycles(graph);
    let mut problems = Vec::new();
    for cycle in &found {
        if allowed.iter().any(|(c, _)| c == cycle) {
            continue;
        }
        let modules: Vec<&str> = cycle.split(" → ").collect();
        let why: Vec<String> = modules
            .windows(2)
            .map(|pair| format!("    {} → {}: {}", pair[0], pair[1], graph[pair[0]][pair[1]]))
            .collect();
        problems.push(format!("cycle {cycle}\n{}", why.join("\n")));
    }
    for (cycle, why) in allowed {
        if !found.iter().any(|c| c == cycle) {
            problems.push(format!(
                "allow-list entry no cycle needs any more (remove it): {cycle} ({why})"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// ARCHITECTURE.md's picture of the arrows: per module, its size in lines and the modules
/// it names. A line is `module  size ─▶ a, b, c`; text in parentheses is a note, `a::b`
/// names module `a`.
type Picture = BTreeMap<String, (Option<usize>, BTreeSet<String>)>;

/// The fenced block after the `## Dependencies` heading of `markdown`.
fn picture_block(markdown: &str) -> Option<&str> {
    let section = &markdown[markdown.find("\n## Dependencies\n")?..];
    let start = section.find("\n```\n")? + 5;
    let len = section[start..].find("```")?;
    Some(&section[start..start + len])
}

fn parse_picture(block: &str) -> Result<Picture, String> {
    let mut picture = Picture::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let Some((left, right)) = line.split_once("─▶") else {
            return Err(format!("no `─▶` in `{line}`"));
        };
        let mut words = left.split_whitespace();
        let Some(module) = words.next() else {
            return Err(format!("no module before `─▶` in `{line}`"));
        };
        let size = match words.next() {
            None => None,
            Some(w) => Some(
                w.parse::<usize>()
                    .map_err(|_| format!("`{w}` is not a size in lines in `{line}`"))?,
            ),
        };
        let mut depth = 0;
        let bare: String = right
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let targets = bare
            .split(',')
            .map(|t| t.trim().split("::").next().unwrap_or("").to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if picture
            .insert(module.to_string(), (size, targets))
            .is_some()
        {
            return Err(format!("module `{module}` has two lines"));
        }
    }
    Ok(picture)
}

/// The largest difference between a size in the picture and the code's that still
/// matches: 15% or 60 lines, whichever is more (an ordinary edit passes, a move does not).
fn size_tolerance(size: usize) -> usize {
    (size * 15 / 100).max(60)
}

/// Where `picture` and the code differ, one line each.
fn picture_differences(
    picture: &Picture,
    graph: &Graph,
    sizes: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for (module, arrows) in graph {
        let Some((size, shown)) = picture.get(module) else {
            differences.push(format!("{module}: not in the picture"));
            continue;
        };
        let code: BTreeSet<String> = arrows.keys().cloned().collect();
        for missing in code.difference(shown) {
            differences.push(format!(
                "{module} → {missing}: in the code ({}), not in the picture",
                arrows[missing]
            ));
        }
        for gone in shown.difference(&code) {
            differences.push(format!(
                "{module} → {gone}: in the picture, not in the code"
            ));
        }
        let lines = sizes.get(module).copied().unwrap_or(0);
        match size {
            None => differences.push(format!("{module}: no size (the code has {lines} lines)")),
            Some(s) if s.abs_diff(lines) > size_tolerance(*s) => differences.push(format!(
                "{module}: {s} lines in the picture, {lines} in the code (more than ±{})",
                size_tolerance(*s)
            )),
            Some(_) => {}
        }
    }
    for module in picture.keys().filter(|m| !graph.contains_key(*m)) {
        differences.push(format!(
            "{module}: in the picture, not a module of the code"
        ));
    }
    differences
}

/// The picture as the code is: modules from those that name the most layers below them
/// down to those that name none, each with its size, the modules it names in the same
/// order, and the rules of `FORBIDDEN`, `SELF_CONTAINED` and `ALLOWED` as notes.
fn render_picture<'a>(graph: &'a Graph, sizes: &BTreeMap<String, usize>) -> String {
    let component = components(graph);
    // A module's height: the longest chain of arrows below it, a cycle counted once.
    fn height<'g>(
        module: &'g str,
        graph: &'g Graph,
        component: &BTreeMap<&str, usize>,
        memo: &mut BTreeMap<usize, usize>,
    ) -> usize {
        let c = component[module];
        if let Some(h) = memo.get(&c) {
            return *h;
        }
        memo.insert(c, 0);
        let members: Vec<&str> = graph
            .keys()
            .map(String::as_str)
            .filter(|m| component[m] == c)
            .collect();
        let mut h = 0;
        for m in members {
            for next in graph[m].keys().map(String::as_str) {
                if component[next] != c {
                    h = h.max(1 + height(next, graph, component, memo));
                }
            }
        }
        memo.insert(c, h);
        h
    }
    let mut memo = BTreeMap::new();
    let heights: BTreeMap<&str, usize> = graph
        .keys()
        .map(|m| (m.as_str(), height(m, graph, &component, &mut memo)))
        .collect();
    let order = |mut modules: Vec<&'a str>| -> Vec<&'a str> {
        modules.sort_by_key(|m| (std::cmp::Reverse(heights[m]), *m));
        modules
    };
    let lines: Vec<(String, String)> = order(graph.keys().map(String::as_str).collect())
        .into_iter()
        .map(|module| {
            let targets: Vec<String> = order(graph[module].keys().map(String::as_str).collect())
                .into_iter()
                .map(|to| {
                    ALLOWED
                        .iter()
                        .find(|(from, path, _)| {
                            *from == module && path.split("::").nth(1) == Some(to)
                        })
                        .map_or(to.to_string(), |(_, path, _)| {
                            path.trim_start_matches("crate::").to_string()
                        })
                })
                .collect();
            let never: Vec<String> = FORBIDDEN
                .iter()
                .filter(|(from, _)| *from == module)
                .map(|(_, to)| format!("never {to}"))
                .collect();
            let mut left = format!(" {module:<10} {:>5} ─▶ ", sizes.get(module).unwrap_or(&0));
            left.push_str(if targets.is_empty() { "(nothing)" } else { "" });
            left.push_str(&targets.join(", "));
            let note = if SELF_CONTAINED.contains(&module) {
                "(nothing else)".to_string()
            } else if never.is_empty() {
                String::new()
            } else {
                format!("({})", never.join(", "))
            };
            (left, note)
        })
        .collect();
    let column = lines
        .iter()
        .filter(|(_, note)| !note.is_empty())
        .map(|(left, _)| left.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (left, note) in lines {
        if note.is_empty() {
            out.push_str(&left);
        } else {
            out.push_str(&format!("{left:<column$}  {note}"));
        }
        out.push('\n');
    }
    out
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
    fn no_cycle_between_modules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let graph = module_graph(&src);
        assert!(
            graph.contains_key("store") && graph.contains_key("demo"),
            "{graph:?}"
        );
        if let Err(problems) = check_cycles(&graph, ALLOWED_CYCLES) {
            panic!("{problems}");
        }
    }

    #[test]
    fn architecture_md_shows_every_arrow_and_each_modules_size() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = root.join("src");
        let graph = module_graph(&src);
        let sizes = module_sizes(&src);
        let markdown = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
        let block = picture_block(&markdown).expect("a fenced block under ## Dependencies");
        let differences = match parse_picture(block) {
            Ok(picture) => picture_differences(&picture, &graph, &sizes),
            Err(e) => vec![e],
        };
        assert!(
            differences.is_empty(),
            "ARCHITECTURE.md's picture of the dependencies is not the code's:\n{}\n\n\
             the block as the code is:\n```\n{}```",
            differences.join("\n"),
            render_picture(&graph, &sizes)
        );
    }

    /// A synthetic file: its place in the crate (`store::write`), a name, its source.
    fn file(place: &str, source: &str) -> (Vec<String>, String, String) {
        (
            place.split("::").map(str::to_string).collect(),
            format!("src/{}.rs", place.replace("::", "/")),
            source.to_string(),
        )
    }

    /// `store → snapshot → clock`, `sync → store`: no cycle.
    fn acyclic() -> Vec<(Vec<String>, String, String)> {
        vec![
            file(
                "store",
                "use crate::snapshot::Entity; use crate::store::write; fn f() { crate::outln!(\"x\"); }",
            ),
            file("store::write", "use super::Store;"),
            file("snapshot", "use crate::clock::now_utc;"),
            file("clock", ""),
            file("sync", "use crate::store::Store;"),
        ]
    }

    #[test]
    fn the_cycle_check_finds_a_cycle_however_it_is_made_and_names_its_arrows() {
        let graph = graph_of(&acyclic()).unwrap();
        assert_eq!(check_cycles(&graph, &[]), Ok(()));
        // `outln` is the crate root's macro, not a module; a module naming itself is no arrow.
        assert_eq!(graph["store"].keys().collect::<Vec<_>>(), ["snapshot"]);
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "clock::inner",
                "fn f() { let _ = crate::store::Store::open; }",
                &["clock → store → snapshot → clock"],
            ),
            (
                "store::write",
                "fn f() { super::super::sync::run_once(); }",
                &["store → sync → store"],
            ),
            (
                "snapshot",
                "mod inner { use super::super::sync::RunReport; }",
                &["snapshot → sync → store → snapshot"],
            ),
            (
                "clock",
                "use crate::{store::Store, sync::run_once};",
                &[
                    "clock → store → snapshot → clock",
                    "clock → sync → store → snapshot → clock",
                ],
            ),
            (
                "clock",
                "fn f() { tracing::info!(at = %crate::sync::now(), \"x\"); }",
                &["clock → sync → store → snapshot → clock"],
            ),
            // Test code may reach anywhere.
            (
                "clock",
                "#[cfg(test)] mod tests { use crate::store::Store; }",
                &[],
            ),
        ];
        for (place, source, expected) in cases {
            let mut files = acyclic();
            files.push(file(place, source));
            let graph = graph_of(&files).unwrap();
            assert_eq!(&cycles(&graph), expected, "{place}: {source}");
            let result = check_cycles(&graph, &[]);
            for cycle in *expected {
                let problems = result.as_ref().unwrap_err();
                assert!(problems.contains(&format!("cycle {cycle}\n")), "{problems}");
            }
            if expected.is_empty() {
                assert_eq!(result, Ok(()));
            }
        }
        // Each arrow of a cycle is shown with the file and path that make it.
        let mut files = acyclic();
        files.push(file("clock", "use crate::store::Store;"));
        let problems = check_cycles(&graph_of(&files).unwrap(), &[]).unwrap_err();
        assert_eq!(
            problems,
            "cycle clock → store → snapshot → clock\n    \
             clock → store: src/clock.rs names crate::store::Store\n    \
             store → snapshot: src/store.rs names crate::snapshot::Entity\n    \
             snapshot → clock: src/snapshot.rs names crate::clock::now_utc"
        );
        // An allowed cycle passes; an entry no cycle needs fails.
        let graph = graph_of(&files).unwrap();
        let allowed = [("clock → store → snapshot → clock", "being removed")];
        assert_eq!(check_cycles(&graph, &allowed), Ok(()));
        let stale = check_cycles(&graph_of(&acyclic()).unwrap(), &allowed).unwrap_err();
        assert!(
            stale.contains("no cycle needs any more") && stale.contains("clock → store"),
            "{stale}"
        );
    }

    #[test]
    fn a_cycle_added_to_the_shipped_code_fails_the_cycle_test() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = shipped_sources(&src);
        // `store` names `sync` (a forbidden arrow too), and `sync` names `store`.
        files.push(file("store::synthetic", "use crate::sync::RunReport;"));
        let problems = check_cycles(&graph_of(&files).unwrap(), ALLOWED_CYCLES).unwrap_err();
        assert!(
            problems.contains("cycle store → sync → store\n")
                && problems
                    .contains("store → sync: src/store/synthetic.rs names crate::sync::RunReport"),
            "{problems}"
        );
    }

    #[test]
    fn the_picture_is_read_as_it_is_written_and_differences_are_named() {
        let block = " store   100 ─▶ snapshot, clock   (never api, never sync)\n\
                     \n\
                     fake    500 ─▶ api::capture (replay reads the recording) (nothing else)\n\
                     clock    40 ─▶ (nothing)\n";
        let picture = parse_picture(block).unwrap();
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(picture["store"], (Some(100), set(&["snapshot", "clock"])));
        assert_eq!(picture["fake"], (Some(500), set(&["api"])));
        assert_eq!(picture["clock"], (Some(40), set(&[])));
        assert!(parse_picture(" store ─▶ a\n store ─▶ b")
            .unwrap_err()
            .contains("two lines"));
        assert!(parse_picture(" store a ─▶ b")
            .unwrap_err()
            .contains("`a` is not a size"));
        assert!(parse_picture(" store, clock: nothing")
            .unwrap_err()
            .contains("no `─▶`"));

        let graph = graph_of(&acyclic()).unwrap();
        let sizes: BTreeMap<String, usize> = [
            ("store", 400),
            ("snapshot", 1000),
            ("clock", 40),
            ("sync", 60),
        ]
        .into_iter()
        .map(|(m, n)| (m.to_string(), n))
        .collect();
        let block = " sync      60 ─▶ store\n\
                     store    340 ─▶ snapshot   (never sync)\n\
                     snapshot 1150 ─▶ clock\n\
                     clock      0 ─▶\n";
        assert_eq!(
            picture_differences(&parse_picture(block).unwrap(), &graph, &sizes),
            Vec::<String>::new()
        );
        let wrong = " sync      60 ─▶ store, clock\n\
                     store    339 ─▶ (never sync)\n\
                     snapshot  849 ─▶ clock\n\
                     clock ─▶\n\
                     diff      10 ─▶ snapshot\n";
        assert_eq!(
            picture_differences(&parse_picture(wrong).unwrap(), &graph, &sizes),
            [
                "clock: no size (the code has 40 lines)",
                "snapshot: 849 lines in the picture, 1000 in the code (more than ±127)",
                "store → snapshot: in the code (src/store.rs names crate::snapshot::Entity), not in the picture",
                "store: 339 lines in the picture, 400 in the code (more than ±60)",
                "sync → clock: in the picture, not in the code",
                "diff: in the picture, not a module of the code",
            ]
        );
        // What the test prints reads back as the code is.
        let printed = render_picture(&graph, &sizes);
        assert_eq!(
            printed,
            " sync          60 ─▶ store\n \
             store        400 ─▶ snapshot  (never api, never sync, never snapshot)\n \
             snapshot    1000 ─▶ clock     (never diff)\n \
             clock         40 ─▶ (nothing)\n"
        );
    }

    #[test]
    fn the_printed_picture_of_the_shipped_code_reads_back_without_a_difference() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (graph, sizes) = (module_graph(&src), module_sizes(&src));
        let printed = render_picture(&graph, &sizes);
        let picture = parse_picture(&printed).unwrap();
        assert_eq!(
            picture_differences(&picture, &graph, &sizes),
            Vec::<String>::new(),
            "{printed}"
        );
        assert!(printed.contains(" store "), "{printed}");
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
                "model",
                "use crate::config::Config;",
                &["model → config (crate::config::Config)"],
            ),
            (
                "model::records",
                "use super::org::Org; use crate::model::api::X;",
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
