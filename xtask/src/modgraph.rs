//! `cargo xtask lint`'s module-graph step: the import graph of `apps/server/src` between
//! files (modules) must have no cycle.
//!
//! Dependency-free textual analysis: comments, strings and character literals are
//! stripped, the rest is tokenized. `mod x;` / `mod x { … }` declarations build the module
//! tree from `lib.rs`; every `use` tree and every path in code that starts with `crate::`,
//! `super::`, `self::`, a child module's name or a name a `use` brought into scope is
//! resolved to the deepest module it names. A name the module re-exports (or imports) is
//! followed to the module that defines it, so `crate::http::ApiError` is an edge to
//! `http/error.rs`, not to `http/mod.rs`. A `mod` declaration is not an edge. An edge from
//! a file to itself (an inline `mod tests` using `super::*`) is ignored. Every strongly
//! connected component with more than one file is a cycle and is reported with the edges
//! (file, line, path) that close it. Layer rules ([`FORBIDDEN`]) name imports a layer
//! may not make even without a cycle (the edge `http/` imports nothing above it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Cycles that still exist and are allowed for now (each entry: the files of one cycle,
/// sorted). The list only shrinks: a new cycle fails, and so does an entry that no longer
/// matches a cycle.
const ALLOWED: &[&[&str]] = &[];

/// Layer rules beside the no-cycle rule: files under the first prefix may not import
/// files under any of the others. The edge (`http/`) imports nothing of the app's upper
/// layers; what it needs is injected (see docs/architecture.md).
const FORBIDDEN: &[(&str, &[&str])] = &[(
    "http/",
    &["routes/", "state.rs", "authz", "auth/", "startup.rs"],
)];

/// The lint step: fails when `apps/server/src` has an import cycle not in [`ALLOWED`].
pub fn run() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("apps/server/src");
    println!("==> module graph (apps/server/src)");
    let graph = Graph::load(&root)?;
    let cycles = graph.cycles();
    let allowed: BTreeSet<Vec<String>> = ALLOWED
        .iter()
        .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    let found: BTreeSet<Vec<String>> = cycles.iter().cloned().collect();
    let mut failed = false;
    for cycle in &cycles {
        if allowed.contains(cycle) {
            println!("allowed cycle (shrink me): {}", cycle.join(", "));
            continue;
        }
        failed = true;
        eprintln!("import cycle between {} files:", cycle.len());
        for (from, to, at) in graph.edges_within(cycle) {
            eprintln!("  {from} -> {to}   ({at})");
        }
    }
    for (from, to, at) in graph.forbidden(FORBIDDEN) {
        failed = true;
        eprintln!("layer rule broken: {from} imports {to}   ({at})");
    }
    for stale in allowed.difference(&found) {
        failed = true;
        eprintln!(
            "modgraph: ALLOWED lists a cycle that no longer exists; remove it: {}",
            stale.join(", ")
        );
    }
    if failed {
        bail!("module graph: import cycle(s) in apps/server/src (see above)");
    }
    println!(
        "<== module graph: ok ({} files, {} edges, no new cycle)",
        graph.files.len(),
        graph.edges.len()
    );
    Ok(())
}

/// A token of the stripped source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// Blanks comments, string and character literals (keeping newlines) so that only code
/// remains.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                    out.push_str("  ");
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    out.push_str("  ");
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && next == Some('r')))
            && !prev_is_ident(&c, i)
            && raw_string_start(&c, if ch == 'b' { i + 2 } else { i + 1 }).is_some()
        {
            let start = if ch == 'b' { i + 2 } else { i + 1 };
            let hashes = raw_string_start(&c, start).unwrap_or(0);
            i = start + hashes + 1;
            out.push('"');
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push('"');
        } else if ch == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// At `c[at]`: `#…#"` opens a raw string; the number of `#`.
fn raw_string_start(c: &[char], at: usize) -> Option<usize> {
    let mut n = 0;
    while c.get(at + n) == Some(&'#') {
        n += 1;
    }
    (c.get(at + n) == Some(&'"')).then_some(n)
}

/// Tokens with their line numbers.
fn tokenize(code: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut word: String = c[start..i].iter().collect();
            // `r#ident`
            if word == "r"
                && c.get(i) == Some(&'#')
                && c.get(i + 1).is_some_and(|x| x.is_alphabetic())
            {
                let s = i + 1;
                i = s;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                word = c[s..i].iter().collect();
            }
            toks.push((Tok::Ident(word), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            toks.push((Tok::Sep, line));
            i += 2;
        } else {
            toks.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    toks
}

/// One name a `use` brings into a module: `name` stands for `path` (raw segments, as
/// written; resolved in the declaring module), or a glob import of `path`.
#[derive(Debug, Clone)]
struct UseItem {
    name: Option<String>,
    path: Vec<String>,
}

/// Expands the tokens of a `use` tree (after `use`, before `;`) into its paths.
fn expand_use(toks: &[Tok]) -> Vec<UseItem> {
    let mut out = Vec::new();
    let mut pos = 0;
    expand_tree(toks, &mut pos, &[], &mut out);
    out
}

fn expand_tree(toks: &[Tok], pos: &mut usize, prefix: &[String], out: &mut Vec<UseItem>) {
    let mut path = prefix.to_vec();
    if toks.get(*pos) == Some(&Tok::Sep) {
        *pos += 1;
    }
    loop {
        match toks.get(*pos) {
            Some(Tok::Ident(w)) => {
                *pos += 1;
                if w == "self" && !path.is_empty() && !is_path_sep(toks.get(*pos)) {
                    // `foo::{self, …}`: the module `foo` itself.
                    let name = alias(toks, pos).or_else(|| path.last().cloned());
                    out.push(UseItem { name, path });
                    return;
                }
                path.push(w.clone());
                if is_path_sep(toks.get(*pos)) {
                    *pos += 1;
                    continue;
                }
                let name = alias(toks, pos).or_else(|| path.last().cloned());
                if name.as_deref() != Some("_") {
                    out.push(UseItem { name, path });
                } else {
                    out.push(UseItem { name: None, path });
                }
                return;
            }
            Some(Tok::Punct('*')) => {
                *pos += 1;
                out.push(UseItem { name: None, path });
                return;
            }
            Some(Tok::Punct('{')) => {
                *pos += 1;
                loop {
                    match toks.get(*pos) {
                        Some(Tok::Punct('}')) => {
                            *pos += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *pos += 1,
                        None => return,
                        Some(_) => {
                            let before = *pos;
                            expand_tree(toks, pos, &path, out);
                            if *pos == before {
                                *pos += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

fn is_path_sep(t: Option<&Tok>) -> bool {
    t == Some(&Tok::Sep)
}

/// `as name` after a use path.
fn alias(toks: &[Tok], pos: &mut usize) -> Option<String> {
    if toks.get(*pos) == Some(&Tok::Ident("as".into()))
        && let Some(Tok::Ident(n)) = toks.get(*pos + 1)
    {
        *pos += 2;
        return Some(n.clone());
    }
    None
}

/// A module: the file that holds it and its child modules.
#[derive(Debug, Default)]
struct Module {
    file: usize,
    children: BTreeSet<String>,
    uses: Vec<UseItem>,
}

/// A path found in a file: where, in which module, and its segments.
#[derive(Debug)]
struct Reference {
    file: usize,
    module: Vec<String>,
    line: usize,
    path: Vec<String>,
}

/// The file-level import graph of one crate's source tree.
#[derive(Debug)]
pub struct Graph {
    /// Files, relative to the source root.
    files: Vec<String>,
    /// (from, to) → where the first such reference is (`file:line path`).
    edges: BTreeMap<(usize, usize), String>,
}

impl Graph {
    /// Reads the crate whose root is `src/lib.rs` (or `src/main.rs`) under `src`.
    pub fn load(src: &Path) -> anyhow::Result<Self> {
        let root_file = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.is_file())
            .with_context(|| format!("no lib.rs or main.rs in {}", src.display()))?;
        let mut files: Vec<String> = Vec::new();
        let mut modules: HashMap<Vec<String>, Module> = HashMap::new();
        let mut refs: Vec<Reference> = Vec::new();
        // (module path, file path, the directory its file children live in)
        let mut queue: Vec<(Vec<String>, PathBuf, PathBuf)> =
            vec![(Vec::new(), root_file, src.to_path_buf())];
        while let Some((modpath, file, child_dir)) = queue.pop() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rel = file
                .strip_prefix(src)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let idx = files.len();
            files.push(rel);
            let toks = tokenize(&strip(&text));
            let parsed = parse_file(&toks);
            for (inline, decl) in parsed.modules {
                let mut full = modpath.clone();
                full.extend(inline.iter().cloned());
                let m = modules.entry(full.clone()).or_default();
                m.file = idx;
                if let Some(parent) = full.split_last().map(|(_, p)| p.to_vec())
                    && !inline.is_empty()
                {
                    modules
                        .entry(parent)
                        .or_default()
                        .children
                        .insert(inline.last().cloned().unwrap_or_default());
                }
                for name in decl {
                    modules
                        .entry(full.clone())
                        .or_default()
                        .children
                        .insert(name.clone());
                    if !inline.is_empty() {
                        bail!(
                            "{}: `mod {name};` inside an inline module is not supported",
                            files[idx]
                        );
                    }
                    let flat = child_dir.join(format!("{name}.rs"));
                    let nested = child_dir.join(&name).join("mod.rs");
                    let (child_file, dir) = if flat.is_file() {
                        (flat, child_dir.join(&name))
                    } else if nested.is_file() {
                        (nested, child_dir.join(&name))
                    } else {
                        bail!("{}: no file for `mod {name};`", files[idx]);
                    };
                    let mut child = modpath.clone();
                    child.push(name);
                    queue.push((child, child_file, dir));
                }
            }
            for (inline, item) in parsed.uses {
                let mut full = modpath.clone();
                full.extend(inline);
                modules.entry(full).or_default().uses.push(item);
            }
            for (inline, line, path) in parsed.paths {
                let mut module = modpath.clone();
                module.extend(inline);
                refs.push(Reference {
                    file: idx,
                    module,
                    line,
                    path,
                });
            }
        }
        let resolver = Resolver { modules: &modules };
        let mut edges = BTreeMap::new();
        for r in &refs {
            let Some(target) = resolver.resolve(&r.module, &r.path, 0) else {
                continue;
            };
            let Some(to) = modules.get(&target).map(|m| m.file) else {
                continue;
            };
            if to != r.file {
                edges.entry((r.file, to)).or_insert_with(|| {
                    format!("{}:{} {}", files[r.file], r.line, r.path.join("::"))
                });
            }
        }
        Ok(Self { files, edges })
    }

    /// Every cycle: the files of each strongly connected component with more than one
    /// file, sorted, in a stable order.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let n = self.files.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in self.edges.keys() {
            adj[a].push(b);
        }
        let mut out: Vec<Vec<String>> = tarjan(&adj)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(|&i| self.files[i].clone()).collect();
                names.sort();
                names
            })
            .collect();
        out.sort();
        out
    }

    /// The edges that break a layer rule: (from, to, where).
    pub fn forbidden(&self, rules: &[(&str, &[&str])]) -> Vec<(String, String, String)> {
        self.edges
            .iter()
            .map(|((a, b), at)| (&self.files[*a], &self.files[*b], at))
            .filter(|(from, to, _)| {
                rules.iter().any(|(layer, banned)| {
                    from.starts_with(layer) && banned.iter().any(|x| to.starts_with(x))
                })
            })
            .map(|(from, to, at)| (from.clone(), to.clone(), at.clone()))
            .collect()
    }

    /// The edges between the files of one cycle: (from, to, where).
    pub fn edges_within(&self, cycle: &[String]) -> Vec<(String, String, String)> {
        let inside: BTreeSet<usize> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| cycle.contains(f))
            .map(|(i, _)| i)
            .collect();
        self.edges
            .iter()
            .filter(|((a, b), _)| inside.contains(a) && inside.contains(b))
            .map(|((a, b), at)| (self.files[*a].clone(), self.files[*b].clone(), at.clone()))
            .collect()
    }
}

/// What one file declares: modules (inline path → file children declared there), use
/// items and paths (with the inline module path they appear in).
#[derive(Default)]
struct Parsed {
    modules: Vec<(Vec<String>, Vec<String>)>,
    uses: Vec<(Vec<String>, UseItem)>,
    paths: Vec<(Vec<String>, usize, Vec<String>)>,
}

fn parse_file(toks: &[(Tok, usize)]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut decls: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    decls.insert(Vec::new(), Vec::new());
    // Inline module stack: (name, brace depth inside it).
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let inline =
        |stack: &[(String, usize)]| stack.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = (&toks[i].0, toks[i].1);
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((next, _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    if *next == Tok::Punct(';') {
                        decls.entry(inline(&stack)).or_default().push(name.clone());
                        i += 3;
                        continue;
                    }
                    if *next == Tok::Punct('{') {
                        depth += 1;
                        stack.push((name.clone(), depth));
                        decls.entry(inline(&stack)).or_default();
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Ident(w) if w == "use" && !preceded_by_sep(toks, i) => {
                let mut j = i + 1;
                let mut tree = Vec::new();
                while j < toks.len() && toks[j].0 != Tok::Punct(';') {
                    tree.push(toks[j].0.clone());
                    j += 1;
                }
                for item in expand_use(&tree) {
                    parsed.paths.push((inline(&stack), line, item.path.clone()));
                    parsed.uses.push((inline(&stack), item));
                }
                i = j + 1;
                continue;
            }
            Tok::Ident(w)
                if !preceded_by_sep(toks, i)
                    && !preceded_by_dot(toks, i)
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Sep) =>
            {
                // A path in code: collect `w::a::b…` (stops at `::<`, `::{`, `::*`).
                let mut path = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Sep) {
                    if let Some((Tok::Ident(seg), _)) = toks.get(j + 1) {
                        path.push(seg.clone());
                        j += 2;
                    } else {
                        break;
                    }
                }
                parsed.paths.push((inline(&stack), line, path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parsed.modules = decls.into_iter().collect();
    parsed
}

fn preceded_by_sep(toks: &[(Tok, usize)], i: usize) -> bool {
    i > 0 && toks[i - 1].0 == Tok::Sep
}

fn preceded_by_dot(toks: &[(Tok, usize)], i: usize) -> bool {
    i > 0 && toks[i - 1].0 == Tok::Punct('.')
}

struct Resolver<'a> {
    modules: &'a HashMap<Vec<String>, Module>,
}

impl Resolver<'_> {
    fn is_child(&self, module: &[String], name: &str) -> bool {
        self.modules
            .get(module)
            .is_some_and(|m| m.children.contains(name))
    }

    fn use_named<'b>(&'b self, module: &[String], name: &str) -> Option<&'b UseItem> {
        self.modules
            .get(module)?
            .uses
            .iter()
            .find(|u| u.name.as_deref() == Some(name))
    }

    /// The module a path (as written in `ctx`) lands in, following imports and
    /// re-exports to the defining module; `None` for another crate or a local item.
    fn resolve(&self, ctx: &[String], segs: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > 16 || segs.is_empty() {
            return None;
        }
        let mut cur: Vec<String>;
        let mut i;
        match segs[0].as_str() {
            "crate" => {
                cur = Vec::new();
                i = 1;
            }
            "self" => {
                cur = ctx.to_vec();
                i = 1;
            }
            "super" => {
                cur = ctx.to_vec();
                i = 0;
                while segs.get(i).map(String::as_str) == Some("super") {
                    cur.pop()?;
                    i += 1;
                }
            }
            first if self.is_child(ctx, first) => {
                cur = ctx.to_vec();
                cur.push(first.to_owned());
                i = 1;
            }
            first => {
                let item = self.use_named(ctx, first)?;
                if item.path.first().map(String::as_str) == Some(first)
                    && !self.is_child(ctx, first)
                {
                    return None; // `use foo::bar` with `foo` another crate
                }
                let mut next = item.path.clone();
                next.extend(segs[1..].iter().cloned());
                return self.resolve(ctx, &next, depth + 1);
            }
        }
        while let Some(seg) = segs.get(i) {
            if self.is_child(&cur, seg) {
                cur.push(seg.clone());
                i += 1;
            } else {
                break;
            }
        }
        if let Some(seg) = segs.get(i)
            && let Some(item) = self.use_named(&cur, seg)
        {
            let mut next = item.path.clone();
            next.extend(segs[i + 1..].iter().cloned());
            if let Some(found) = self.resolve(&cur, &next, depth + 1) {
                return Some(found);
            }
        }
        self.modules.contains_key(&cur).then_some(cur)
    }
}

/// Tarjan's strongly connected components.
fn tarjan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for k in 0..s.adj[v].len() {
            let w = s.adj[v][k];
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = adj.len();
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// A fixture tree in a fresh temporary directory: (relative path, content).
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("modgraph-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn cycles_of(name: &str, files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let dir = tree(name, files);
        let cycles = Graph::load(&dir).unwrap().cycles();
        std::fs::remove_dir_all(&dir).unwrap();
        cycles
    }

    #[test]
    fn a_cycle_through_use_and_a_code_path_is_found() {
        let cycles = cycles_of(
            "cycle",
            &[
                ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
                ("a.rs", "use crate::b::Thing;\n"),
                ("b.rs", "pub struct Thing;\nfn f() { crate::c::g(); }\n"),
                ("c.rs", "pub fn g() { let _ = crate::a::X; }\n"),
            ],
        );
        assert_eq!(
            cycles,
            vec![vec!["a.rs".to_owned(), "b.rs".into(), "c.rs".into()]]
        );
    }

    #[test]
    fn a_dag_passes_and_comments_strings_and_self_edges_do_not_count() {
        let cycles = cycles_of(
            "dag",
            &[
                ("lib.rs", "pub mod a;\npub mod b;\n"),
                (
                    "a.rs",
                    "use crate::b::{self, Thing as T};\nfn f() { b::g(); }\n",
                ),
                (
                    "b.rs",
                    "// crate::a::f\n/* use crate::a; */\npub struct Thing;\npub fn g() { let _ = \"crate::a::f\"; let _ = r#\"crate::a\"#; let _c = '\"'; }\n#[cfg(test)]\nmod tests { use super::*; fn t() { let _ = super::Thing; } }\n",
                ),
            ],
        );
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn super_is_resolved_relative_to_the_module() {
        // `x/y.rs` uses `super::z` = `x/z.rs`, and `x/z.rs` uses `super::super::top`
        // = `top.rs`, which uses `crate::x::y`: a cycle of three, found only when `super`
        // resolves to the right module.
        let cycles = cycles_of(
            "super",
            &[
                ("lib.rs", "mod top;\nmod x;\n"),
                ("top.rs", "use crate::x::y::Y;\n"),
                ("x/mod.rs", "pub mod y;\npub mod z;\n"),
                ("x/y.rs", "pub struct Y;\nfn f() { super::z::g(); }\n"),
                ("x/z.rs", "pub fn g() { let _ = super::super::top::T; }\n"),
            ],
        );
        assert_eq!(
            cycles,
            vec![vec!["top.rs".to_owned(), "x/y.rs".into(), "x/z.rs".into()]]
        );
        // Without the back edge: no cycle (and `super::` in an inline module stays in
        // its file).
        let cycles = cycles_of(
            "super-dag",
            &[
                ("lib.rs", "mod top;\nmod x;\n"),
                ("top.rs", "use crate::x::y::Y;\n"),
                ("x/mod.rs", "pub mod y;\npub mod z;\n"),
                (
                    "x/y.rs",
                    "pub struct Y;\nfn f() { super::z::g(); }\nmod tests { use super::super::y::Y; }\n",
                ),
                ("x/z.rs", "pub fn g() {}\n"),
            ],
        );
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn a_re_export_is_followed_to_the_defining_file() {
        // `http/extract.rs` uses `crate::http::ApiError` (re-exported by `http/mod.rs`
        // from `http/error.rs`): an edge to error.rs, not a cycle through mod.rs.
        let files = [
            ("lib.rs", "pub mod http;\n"),
            (
                "http/mod.rs",
                "pub mod error;\npub mod extract;\npub use error::ApiError;\npub use extract::Json;\n",
            ),
            ("http/error.rs", "pub struct ApiError;\n"),
            (
                "http/extract.rs",
                "use crate::http::ApiError;\npub struct Json;\n",
            ),
        ];
        assert!(cycles_of("reexport", &files).is_empty());
        let dir = tree("reexport-edges", &files);
        let graph = Graph::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let edges: Vec<(String, String)> = graph
            .edges
            .keys()
            .map(|(a, b)| (graph.files[*a].clone(), graph.files[*b].clone()))
            .collect();
        assert!(
            edges.contains(&("http/extract.rs".into(), "http/error.rs".into())),
            "{edges:?}"
        );
        assert!(
            !edges.contains(&("http/extract.rs".into(), "http/mod.rs".into())),
            "{edges:?}"
        );
    }

    #[test]
    fn a_layer_rule_names_the_edge_that_breaks_it() {
        let files = [
            ("lib.rs", "pub mod http;\npub mod state;\n"),
            ("http/mod.rs", "pub mod rate;\n"),
            (
                "http/rate.rs",
                "fn f() { let _ = crate::state::AppState; }\n",
            ),
            ("state.rs", "pub struct AppState;\n"),
        ];
        let dir = tree("layers", &files);
        let graph = Graph::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let broken = graph.forbidden(FORBIDDEN);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert_eq!(
            (broken[0].0.as_str(), broken[0].1.as_str()),
            ("http/rate.rs", "state.rs")
        );
    }

    #[test]
    fn the_server_sources_parse() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/server/src");
        let graph = Graph::load(&src).unwrap();
        assert!(graph.files.iter().any(|f| f == "http/openapi.rs"));
        assert!(graph.edges.len() > 20);
        assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
        assert!(graph.forbidden(FORBIDDEN).is_empty());
    }
}
