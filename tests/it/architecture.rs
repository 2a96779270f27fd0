//! ARCHITECTURE.md promises that the module import graph has no cycle outside
//! the actors' messages to each other: this reads every `use` of `src/` and
//! checks it, so a new import that closes a circle fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// The module a source file defines: `src/ws/mod.rs` → `ws`, `src/hub.rs` → `hub`.
fn module_of(relative: &Path) -> Module {
    let mut parts: Module = relative.with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Test modules may reach anywhere; the rule is about the code they test.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default().to_owned();
            out.insert(module_of(path.strip_prefix(root).unwrap()), code);
        }
    }
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else { return vec![path.to_owned()] };
    let (prefix, inner) = (&path[..open], &path[open + 1..path.len() - 1]);
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items.into_iter().filter(|i| !i.is_empty()).flat_map(|i| expand(&format!("{prefix}{i}"))).collect()
}

/// The modules `module` imports from, resolved to the longest existing module path.
fn imports(module: &Module, code: &str, modules: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let Some(start) = ["use ", "pub use ", "pub(crate) use "].iter().find_map(|p| line.strip_prefix(p)) else { continue };
        let mut statement = start.to_owned();
        while !statement.contains(';') {
            let Some(more) = lines.next() else { break };
            statement.push_str(more);
        }
        // `x as y` imports `x`: drop each `as` and the name after it, then all spaces.
        let mut words = statement.split(';').next().unwrap_or_default().split_whitespace();
        let mut path = String::new();
        while let Some(word) = words.next() {
            match word {
                "as" => {
                    let renamed = words.next().unwrap_or_default();
                    path.extend(renamed.find([',', '}']).map(|i| &renamed[i..]));
                }
                _ => path.push_str(word),
            }
        }
        for full in expand(&path) {
            let parts: Vec<&str> = full.split("::").collect();
            let mut target: Module = match parts[0] {
                "crate" => Vec::new(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                "self" => module.clone(),
                _ => continue,
            };
            let rest = parts.iter().skip(1).skip_while(|p| **p == "super");
            for _ in parts.iter().skip(1).take_while(|p| **p == "super") {
                target.pop();
            }
            target.extend(rest.map(|p| (*p).to_owned()));
            while !target.is_empty() && !modules.contains(&target) {
                target.pop();
            }
            if !target.is_empty() && &target != module {
                found.insert(target);
            }
        }
    }
    found
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<BTreeSet<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<BTreeSet<Module>>,
    }
    fn visit<'a>(v: &'a Module, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, &mut state);
        }
    }
    state.found
}

#[test]
fn no_import_cycle_outside_the_actors_messages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&root, &root, &mut files);
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let graph: BTreeMap<Module, BTreeSet<Module>> = files.iter().map(|(m, code)| (m.clone(), imports(m, code, &modules))).collect();
    assert!(graph[&vec!["hub".to_owned()]].contains(&vec!["actors".to_owned(), "router".to_owned()]), "the parser sees imports");
    let actors: BTreeSet<Module> = ["", "conversation", "operator", "router"]
        .iter()
        .map(|m| ["actors", m].iter().filter(|p| !p.is_empty()).map(|p| (*p).to_owned()).collect())
        .collect();
    for cycle in cycles(&graph) {
        assert!(cycle.is_subset(&actors), "import cycle: {:?}", cycle.iter().map(|m| m.join("::")).collect::<Vec<_>>());
    }
}
