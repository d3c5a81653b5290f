//! `cargo xtask check-cycles`: import cycles between the modules of each workspace crate.
//!
//! Every lib and bin target of every workspace member is read from its root file with `syn`:
//! the module tree (`mod x;` as `x.rs` or `x/mod.rs`, `#[path]`, inline `mod x { }`), then
//! every path by which a module reaches another: `use` trees (`crate::`, `super::`, `self::`,
//! a child module's name, nested groups, `pub use` re-exports), paths in code and types, and
//! `crate::`/`super::`/`self::` paths inside macro calls. A `mod` declaration itself is no
//! edge. Test-only code (`#[cfg(test)]` modules and items, and any `cfg` that requires
//! `test`) is left out unless asked for (`--with-tests`): a unit test reaching into its
//! parent is no design dependency. Intra-doc links are not read (they are no imports), and
//! integration tests (`tests/*.rs`) are crates of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Item, Meta, Token, UseTree};

/// A module path inside one crate; empty for the crate root.
type ModPath = Vec<String>;

/// Where a reference stands in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One module that reaches another, with the first place it does so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub example: Location,
}

/// A strongly connected component of more than one module in one crate target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// `cairn-api (lib)`, `cairn-init (bin cairn-init)`.
    pub target: String,
    /// The modules in the component, sorted (`crate` is the crate root).
    pub modules: Vec<String>,
    /// Every edge between two modules of the component.
    pub edges: Vec<Edge>,
}

/// A crate target to read: its display name and root source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub root: PathBuf,
}

/// Which code the check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What a normal build compiles: test-only modules and items are left out.
    Code,
    /// Also `#[cfg(test)]` items, and `#[cfg(test)]` modules as part of the module that
    /// declares them (a unit test's paths count as its module's).
    WithTests,
}

/// `cargo xtask check-cycles`: prints every cycle and fails if there is one.
pub fn run(repo: &Path, scope: Scope) -> Result<()> {
    let targets = workspace_targets(repo)?;
    let mut cycles = Vec::new();
    for target in &targets {
        cycles.extend(target_cycles(target, repo, scope)?);
    }
    print!("{}", report(targets.len(), &cycles));
    if !cycles.is_empty() {
        bail!("{} import cycle(s) between modules", cycles.len());
    }
    Ok(())
}

/// The text `run` prints.
pub fn report(targets: usize, cycles: &[Cycle]) -> String {
    let mut out = String::new();
    if cycles.is_empty() {
        let _ = writeln!(out, "xtask: no import cycles in {targets} crate targets");
        return out;
    }
    for cycle in cycles {
        let _ = writeln!(
            out,
            "xtask: import cycle in {} between {} modules: {}",
            cycle.target,
            cycle.modules.len(),
            cycle.modules.join(", ")
        );
        for edge in &cycle.edges {
            let _ = writeln!(out, "  {} -> {}  ({})", edge.from, edge.to, edge.example);
        }
    }
    out
}

/// The lib and bin targets of every member of the workspace at `repo`.
pub fn workspace_targets(repo: &Path) -> Result<Vec<Target>> {
    let manifest = repo.join("Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let members = value
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .with_context(|| format!("{}: no [workspace] members", manifest.display()))?;
    let mut targets = Vec::new();
    for member in members {
        let dir = member
            .as_str()
            .with_context(|| format!("{}: a member is not a string", manifest.display()))?;
        targets.extend(member_targets(&repo.join(dir))?);
    }
    Ok(targets)
}

fn member_targets(dir: &Path) -> Result<Vec<Target>> {
    let manifest = dir.join("Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let package = value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{}: no package name", manifest.display()))?;
    let mut targets = Vec::new();
    let lib = value
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
        .unwrap_or("src/lib.rs");
    if dir.join(lib).is_file() {
        targets.push(Target {
            name: format!("{package} (lib)"),
            root: dir.join(lib),
        });
    }
    let mut bins: Vec<(String, PathBuf)> = Vec::new();
    for bin in value
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let name = bin.get("name").and_then(|n| n.as_str()).unwrap_or(package);
        let path = bin
            .get("path")
            .and_then(|p| p.as_str())
            .map(|p| dir.join(p))
            .unwrap_or_else(|| dir.join("src/bin").join(format!("{name}.rs")));
        bins.push((name.to_string(), path));
    }
    let main = dir.join("src/main.rs");
    if main.is_file() && !bins.iter().any(|(_, p)| *p == main) {
        bins.push((package.to_string(), main));
    }
    if let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
        let mut extra: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .filter(|p| !bins.iter().any(|(_, b)| b == p))
            .collect();
        extra.sort();
        for path in extra {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            bins.push((name, path));
        }
    }
    for (name, root) in bins {
        if root.is_file() {
            targets.push(Target {
                name: format!("{package} (bin {name})"),
                root,
            });
        }
    }
    Ok(targets)
}

/// The cycles of one target; locations are shown relative to `repo`.
pub fn target_cycles(target: &Target, repo: &Path, scope: Scope) -> Result<Vec<Cycle>> {
    let tree = ModuleTree::load(&target.root, scope)?;
    let graph = tree.graph();
    let show = |file: &Path| file.strip_prefix(repo).unwrap_or(file).to_path_buf();
    let mut cycles = Vec::new();
    for component in strongly_connected(tree.modules.len(), &graph) {
        if component.len() < 2 {
            continue;
        }
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let mut modules: Vec<String> = members.iter().map(|&m| tree.name(m)).collect();
        modules.sort();
        let mut edges: Vec<Edge> = graph
            .iter()
            .filter(|((from, to), _)| members.contains(from) && members.contains(to))
            .map(|((from, to), loc)| Edge {
                from: tree.name(*from),
                to: tree.name(*to),
                example: Location {
                    file: show(&loc.file),
                    line: loc.line,
                },
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        cycles.push(Cycle {
            target: target.name.clone(),
            modules,
            edges,
        });
    }
    cycles.sort_by(|a, b| a.modules.cmp(&b.modules));
    Ok(cycles)
}

/// A module of the tree: its path, the file it is written in and its own items.
struct Module {
    path: ModPath,
    file: PathBuf,
    items: Vec<Item>,
    /// The graph node its paths count for: itself, or for a test-only module the module
    /// that declares it (with `Scope::WithTests`).
    owner: usize,
}

/// Every module of one crate target.
struct ModuleTree {
    modules: Vec<Module>,
    index: HashMap<ModPath, usize>,
    scope: Scope,
}

impl ModuleTree {
    fn load(root: &Path, scope: Scope) -> Result<Self> {
        let mut tree = ModuleTree {
            modules: Vec::new(),
            index: HashMap::new(),
            scope,
        };
        let items = parse(root)?.items;
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        tree.add(Vec::new(), root.to_path_buf(), items, &dir, false, None)?;
        Ok(tree)
    }

    /// Adds module `path` with `items`, then its child modules. `dir` is where its
    /// `mod x;` files are looked for; `inline` says whether it is a `mod x { }` block;
    /// `test_of` is the owner of a test-only module.
    fn add(
        &mut self,
        path: ModPath,
        file: PathBuf,
        items: Vec<Item>,
        dir: &Path,
        inline: bool,
        test_of: Option<usize>,
    ) -> Result<()> {
        let mut children = Vec::new();
        for item in &items {
            let Item::Mod(m) = item else { continue };
            if self.skips(&m.attrs) {
                continue;
            }
            let test_only = requires_test(&m.attrs);
            let name = m.ident.to_string();
            let mut child = path.clone();
            child.push(name.clone());
            match (&m.content, path_attr(&m.attrs)) {
                (Some((_, inner)), _) => {
                    children.push((
                        child,
                        file.clone(),
                        inner.clone(),
                        dir.join(&name),
                        true,
                        test_only,
                    ));
                }
                (None, Some(rel)) => {
                    let base = if inline {
                        dir.to_path_buf()
                    } else {
                        file.parent().unwrap_or(Path::new(".")).to_path_buf()
                    };
                    let child_file = base.join(rel);
                    let child_dir = child_file.parent().unwrap_or(&base).to_path_buf();
                    let inner = parse(&child_file)?.items;
                    children.push((child, child_file, inner, child_dir, false, test_only));
                }
                (None, None) => {
                    let flat = dir.join(format!("{name}.rs"));
                    let nested = dir.join(&name).join("mod.rs");
                    let child_file = if flat.is_file() {
                        flat
                    } else if nested.is_file() {
                        nested
                    } else {
                        bail!(
                            "{}: `mod {name};` has neither {} nor {}",
                            file.display(),
                            flat.display(),
                            nested.display()
                        );
                    };
                    let inner = parse(&child_file)?.items;
                    children.push((child, child_file, inner, dir.join(&name), false, test_only));
                }
            }
        }
        let owner = test_of.unwrap_or(self.modules.len());
        self.index.insert(path.clone(), self.modules.len());
        self.modules.push(Module {
            path,
            file,
            items,
            owner,
        });
        for (child, child_file, inner, child_dir, child_inline, test_only) in children {
            let child_test_of = (test_only || test_of.is_some()).then_some(owner);
            self.add(
                child,
                child_file,
                inner,
                &child_dir,
                child_inline,
                child_test_of,
            )?;
        }
        Ok(())
    }

    /// Whether an item with `attrs` is left out of this scope.
    fn skips(&self, attrs: &[Attribute]) -> bool {
        self.scope == Scope::Code && requires_test(attrs)
    }

    fn name(&self, module: usize) -> String {
        let path = &self.modules[module].path;
        if path.is_empty() {
            "crate".to_string()
        } else {
            path.join("::")
        }
    }

    /// Every edge between two different modules, with the first place found (a module's own
    /// items before those of its test-only modules).
    fn graph(&self) -> BTreeMap<(usize, usize), Location> {
        let mut edges = BTreeMap::new();
        for module in &self.modules {
            let from = module.owner;
            let mut refs = References {
                tree: self,
                current: &module.path,
                found: Vec::new(),
            };
            for item in &module.items {
                refs.visit_item(item);
            }
            for (segments, line) in refs.found {
                let Some(to) = self.resolve(&module.path, &segments) else {
                    continue;
                };
                let to = self.modules[to].owner;
                if to != from {
                    edges.entry((from, to)).or_insert(Location {
                        file: module.file.clone(),
                        line,
                    });
                }
            }
        }
        edges
    }

    /// The module a path written in `current` reaches: the longest module prefix of the
    /// absolute path. `None` for paths into other crates (or unknown names).
    fn resolve(&self, current: &ModPath, segments: &[String]) -> Option<usize> {
        let (first, rest) = segments.split_first()?;
        let mut absolute: ModPath = match first.as_str() {
            "crate" | "$crate" => Vec::new(),
            "self" => current.clone(),
            "super" => current.get(..current.len().checked_sub(1)?)?.to_vec(),
            name => {
                let mut child = current.clone();
                child.push(name.to_string());
                if !self.index.contains_key(&child) {
                    return None;
                }
                child
            }
        };
        let mut rest = rest.iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            rest.next();
            absolute.pop()?;
        }
        absolute.extend(rest.cloned());
        (0..=absolute.len())
            .rev()
            .find_map(|n| self.index.get(&absolute[..n]).copied())
    }
}

/// Collects the module paths written in one module's own items (not its child modules').
struct References<'a> {
    tree: &'a ModuleTree,
    current: &'a ModPath,
    found: Vec<(Vec<String>, usize)>,
}

impl References<'_> {
    /// Whether a path starting with `first` may name a module of this crate.
    fn is_local(&self, first: &str) -> bool {
        matches!(first, "crate" | "$crate" | "self" | "super") || {
            let mut child = self.current.clone();
            child.push(first.to_string());
            self.tree.index.contains_key(&child)
        }
    }

    fn push(&mut self, segments: Vec<String>, span: Span) {
        if segments.first().is_some_and(|s| self.is_local(s)) {
            self.found.push((segments, span.start().line));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &UseTree) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                self.push(path, n.ident.span());
            }
            UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                self.push(path, r.ident.span());
            }
            UseTree::Glob(g) => self.push(prefix.clone(), g.star_token.span),
            UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths inside a macro call's tokens: `crate::a::f`, `super::x`, `$crate::y`.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) => {
                    let dollar = i > 0
                        && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let mut segments = vec![if dollar {
                        format!("${first}")
                    } else {
                        first.to_string()
                    }];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(next)) =
                        (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                    {
                        let TokenTree::Ident(next) = next else { break };
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.push(segments, first.span());
                    }
                    i = j;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for References<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if !item_attrs(item).is_some_and(|attrs| self.tree.skips(attrs)) {
            visit::visit_item(self, item);
        }
    }

    /// Child modules are modules of their own.
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Const(c) => &c.attrs,
            syn::ImplItem::Type(t) => &t.attrs,
            syn::ImplItem::Macro(m) => &m.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !self.tree.skips(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    /// Paths of two or more segments: one segment is a local name (`self`, a variable).
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            if let Some(first) = path.segments.first() {
                self.push(segments, first.ident.span());
            }
        }
        visit::visit_path(self, path);
    }

    /// `pub(crate)`, `pub(super)`, `pub(in a::b)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}

fn parse(file: &Path) -> Result<syn::File> {
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))
}

fn item_attrs(item: &Item) -> Option<&Vec<Attribute>> {
    Some(match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => return None,
    })
}

/// `#[path = "..."]` of a `mod` item.
fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Whether a `#[cfg(...)]` among `attrs` holds only when compiling tests.
fn requires_test(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .filter_map(|a| a.parse_args::<Meta>().ok())
        .any(|m| predicate_requires_test(&m))
}

fn predicate_requires_test(meta: &Meta) -> bool {
    match meta {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(list) => {
            let Ok(inner) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                return false;
            };
            if list.path.is_ident("all") {
                inner.iter().any(predicate_requires_test)
            } else if list.path.is_ident("any") {
                !inner.is_empty() && inner.iter().all(predicate_requires_test)
            } else {
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}

/// Tarjan's strongly connected components of the graph on `0..nodes`.
fn strongly_connected(nodes: usize, edges: &BTreeMap<(usize, usize), Location>) -> Vec<Vec<usize>> {
    struct State {
        next: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        components: Vec<Vec<usize>>,
    }
    fn connect(s: &mut State, v: usize) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for w in s.next[v].clone() {
            match s.index[w] {
                None => {
                    connect(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut next = vec![Vec::new(); nodes];
    for &(from, to) in edges.keys() {
        next[from].push(to);
    }
    let mut state = State {
        next,
        index: vec![None; nodes],
        low: vec![0; nodes],
        on_stack: vec![false; nodes],
        stack: Vec::new(),
        counter: 0,
        components: Vec::new(),
    };
    for v in 0..nodes {
        if state.index[v].is_none() {
            connect(&mut state, v);
        }
    }
    state.components
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    /// Writes `files` (path, text) under a temp dir and returns the cycles of `src/lib.rs`.
    fn cycles_of(files: &[(&str, &str)]) -> Vec<Cycle> {
        cycles_in(files, Scope::Code)
    }

    fn cycles_in(files: &[(&str, &str)], scope: Scope) -> Vec<Cycle> {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let target = Target {
            name: "t (lib)".into(),
            root: dir.path().join("src/lib.rs"),
        };
        target_cycles(&target, dir.path(), scope).unwrap()
    }

    fn pairs(cycle: &Cycle) -> Vec<(String, String, String)> {
        cycle
            .edges
            .iter()
            .map(|e| (e.from.clone(), e.to.clone(), e.example.to_string()))
            .collect()
    }

    #[test]
    fn finds_a_cycle_through_super() {
        let cycles = cycles_of(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            ("src/a.rs", "pub fn f() {\n    super::b::g();\n}\n"),
            (
                "src/b.rs",
                "use crate::a;\npub fn g() {}\nfn h() { a::f() }\n",
            ),
        ]);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].modules, ["a", "b"]);
        assert_eq!(
            pairs(&cycles[0]),
            [
                ("a".into(), "b".into(), "src/a.rs:2".into()),
                ("b".into(), "a".into(), "src/b.rs:1".into())
            ]
        );
    }

    #[test]
    fn a_re_export_makes_the_re_exporting_module_depend_on_its_target() {
        // The root re-exports from `a`, and `a` uses the root's re-export of `b`, which uses
        // `a`'s item through the root: crate -> a, crate -> b, a -> crate, b -> crate.
        let cycles = cycles_of(&[
            (
                "src/lib.rs",
                "mod a;\nmod b;\npub use a::Thing;\npub use self::b::Other;\n",
            ),
            ("src/a.rs", "pub struct Thing(crate::Other);\n"),
            ("src/b.rs", "pub struct Other;\n"),
        ]);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].modules, ["a", "crate"]);
        assert_eq!(
            pairs(&cycles[0]),
            [
                ("a".into(), "crate".into(), "src/a.rs:1".into()),
                ("crate".into(), "a".into(), "src/lib.rs:3".into())
            ]
        );
    }

    #[test]
    fn finds_a_cycle_through_a_nested_use_group_in_a_directory_module() {
        let cycles = cycles_of(&[
            ("src/lib.rs", "pub mod net;\npub mod store;\n"),
            ("src/net/mod.rs", "pub mod plan;\n"),
            (
                "src/net/plan.rs",
                "use crate::{\n    store::{self, Record},\n};\npub struct Plan;\n",
            ),
            (
                "src/store.rs",
                "pub struct Record;\nfn f(_: crate::net::plan::Plan) {}\n",
            ),
        ]);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].modules, ["net::plan", "store"]);
        assert_eq!(cycles[0].edges[0].example.to_string(), "src/net/plan.rs:2");
    }

    #[test]
    fn finds_paths_in_macros_and_inline_modules_and_path_attributes() {
        let cycles = cycles_of(&[
            (
                "src/lib.rs",
                "mod a {\n    pub fn f() { println!(\"{}\", super::b::G); }\n}\n#[path = \"other.rs\"]\nmod b;\n",
            ),
            ("src/other.rs", "pub const G: u8 = 1;\nfn g() { crate::a::f() }\n"),
        ]);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].modules, ["a", "b"]);
    }

    #[test]
    fn no_cycle_when_references_go_one_way_or_only_from_tests() {
        let files = [
            ("src/lib.rs", "pub mod a;\npub mod b;\n"),
            (
                "src/a.rs",
                "pub(crate) fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n#[cfg(all(test, unix))]\nfn t() { crate::b::g() }\n",
            ),
            ("src/b.rs", "use super::a::f;\npub(super) fn g() { f() }\n"),
        ];
        let cycles = cycles_of(&files);
        assert!(cycles.is_empty(), "{}", report(1, &cycles));
        let with_tests = cycles_in(&files, Scope::WithTests);
        assert_eq!(with_tests.len(), 1);
        assert_eq!(with_tests[0].modules, ["a", "b"]);
        assert_eq!(with_tests[0].edges[0].example.to_string(), "src/a.rs:7");
        assert_eq!(
            report(1, &cycles),
            "xtask: no import cycles in 1 crate targets\n"
        );
    }

    #[test]
    fn a_missing_module_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/lib.rs"), "mod gone;\n").unwrap();
        let target = Target {
            name: "t (lib)".into(),
            root: dir.path().join("src/lib.rs"),
        };
        let err = target_cycles(&target, dir.path(), Scope::Code)
            .err()
            .unwrap();
        assert!(err.to_string().contains("`mod gone;`"), "{err}");
    }

    #[test]
    fn reads_every_workspace_member_with_its_lib_and_bins() {
        let repo = Paths::from_manifest_dir().root;
        let targets = workspace_targets(&repo).unwrap();
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "cairn-api (lib)",
            "cairnctl (bin cairnctl)",
            "cairn-vm (lib)",
            "cairn-lab (lib)",
            "cairn-init (bin cairn-init)",
            "xtask (bin xtask)",
        ] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        for target in &targets {
            target_cycles(target, &repo, Scope::WithTests).unwrap();
        }
    }
}
