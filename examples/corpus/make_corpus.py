#!/usr/bin/env python3
"""Generate the hesnr sample corpus (code.jsonl, general.jsonl) deterministically.

Written for this project (Apache-2.0). Standard library only, no downloads: every record is
built from the templates below with a seeded RNG, so running this script again reproduces the
files byte for byte.

    python3 examples/corpus/make_corpus.py            # writes next to this script
    python3 examples/corpus/make_corpus.py --out DIR

code.jsonl    one record per function, commit or issue thread: {"id", "text", "metadata":
              {"kind": function|commit|issue, "lang", "boilerplate": bool, "template"}}.
              About 1 in 5 records is boilerplate (license headers, generated getters/setters,
              minified bundles, generated enums) so that decision density can separate them.
general.jsonl English prose paragraphs across topics: {"id", "text", "metadata": {"topic"}}.
"""

import argparse
import difflib
import json
import os
import random

SEED = 20240617
N_CODE = 240
N_GENERAL = 260

NOUNS = ["user", "order", "invoice", "session", "packet", "record", "token", "job", "node",
         "event", "chunk", "page", "metric", "account", "file", "item", "task", "shard"]
VERBS = ["load", "parse", "merge", "fetch", "render", "validate", "encode", "flush", "index",
         "resolve", "split", "normalize", "schedule", "retry", "compact", "score"]


def ident(rng):
    return f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}s"


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def pascal(snake):
    return "".join(p.title() for p in snake.split("_"))


# ---------------------------------------------------------------- Python functions

def py_dedupe(rng):
    f, n = ident(rng), rng.choice(NOUNS)
    return f'''def {f}(items, key=None):
    """Return the {n}s in order, dropping later duplicates.

    `key` maps a {n} to the value that decides equality (the {n} itself by default).
    """
    seen = set()
    out = []
    for item in items:
        k = item if key is None else key(item)
        if k in seen:
            continue  # keep the first occurrence only
        seen.add(k)
        out.append(item)
    return out
'''


def py_retry(rng):
    f, tries, base = ident(rng), rng.choice([3, 4, 5, 8]), rng.choice([0.1, 0.25, 0.5])
    return f'''import random
import time


def {f}(call, attempts={tries}, base_delay={base}):
    """Call `call()` until it succeeds, sleeping with jittered exponential backoff.

    Raises the last exception when every attempt failed.
    """
    for attempt in range(attempts):
        try:
            return call()
        except (ConnectionError, TimeoutError) as err:
            if attempt == attempts - 1:
                raise
            # Full jitter: spread retries so that clients do not stampede together.
            delay = random.uniform(0, base_delay * 2 ** attempt)
            time.sleep(delay)
'''


def py_window(rng):
    f, w = ident(rng), rng.choice([3, 5, 7, 16])
    return f'''from collections import deque


def {f}(values, width={w}):
    """Yield the moving average of `values` over a window of `width` items."""
    if width <= 0:
        raise ValueError("width must be positive")
    window = deque()
    total = 0.0
    for v in values:
        window.append(v)
        total += v
        if len(window) > width:
            total -= window.popleft()
        if len(window) == width:
            yield total / width
'''


def py_bsearch(rng):
    f = ident(rng)
    return f'''def {f}(sorted_values, target):
    """Index of the first element >= target (len(sorted_values) if none)."""
    lo, hi = 0, len(sorted_values)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_values[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo
'''


def py_parse_kv(rng):
    f, sep = ident(rng), rng.choice(["=", ":"])
    return f'''def {f}(text):
    """Parse `key{sep}value` lines into a dict; `#` starts a comment, blank lines are skipped."""
    result = {{}}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "{sep}" not in line:
            raise ValueError(f"line {{lineno}}: expected key{sep}value, got {{raw!r}}")
        key, value = (part.strip() for part in line.split("{sep}", 1))
        result[key] = value
    return result
'''


def py_topo(rng):
    f, n = ident(rng), rng.choice(NOUNS)
    return f'''def {f}(deps):
    """Order {n}s so that every {n} comes after its dependencies (Kahn's algorithm).

    `deps` maps a {n} to the {n}s it depends on. Raises ValueError on a cycle.
    """
    indegree = {{k: 0 for k in deps}}
    users = {{k: [] for k in deps}}
    for k, ds in deps.items():
        for d in ds:
            indegree.setdefault(d, 0)
            users.setdefault(d, []).append(k)
            indegree[k] += 1
    ready = sorted(k for k, v in indegree.items() if v == 0)
    order = []
    while ready:
        k = ready.pop()
        order.append(k)
        for u in users.get(k, []):
            indegree[u] -= 1
            if indegree[u] == 0:
                ready.append(u)
    if len(order) != len(indegree):
        raise ValueError("dependency cycle")
    return order
'''


# ---------------------------------------------------------------- JavaScript / Rust functions

def js_debounce(rng):
    f, ms = camel(ident(rng)), rng.choice([50, 100, 250, 300])
    return f'''/**
 * Returns a function that runs `fn` only after calls stopped for `wait` ms.
 * The pending call can be cancelled with `.cancel()`.
 */
export function {f}(fn, wait = {ms}) {{
  let timer = null;
  const debounced = (...args) => {{
    clearTimeout(timer);
    timer = setTimeout(() => {{
      timer = null;
      fn(...args);
    }}, wait);
  }};
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}}
'''


def js_group(rng):
    f, n = camel(ident(rng)), rng.choice(NOUNS)
    return f'''// Group {n}s by a key function, keeping the input order inside each group.
function {f}(items, keyFn) {{
  const groups = new Map();
  for (const item of items) {{
    const key = keyFn(item);
    if (!groups.has(key)) {{
      groups.set(key, []);
    }}
    groups.get(key).push(item);
  }}
  return groups;
}}

module.exports = {{ {f} }};
'''


def js_fetch(rng):
    f, n = camel(ident(rng)), rng.choice(NOUNS)
    return f'''async function {f}(client, ids, {{ batchSize = 20 }} = {{}}) {{
  // The API accepts at most `batchSize` ids per request; fetch in slices and
  // stop at the first failure so the caller sees which batch broke.
  const results = [];
  for (let i = 0; i < ids.length; i += batchSize) {{
    const slice = ids.slice(i, i + batchSize);
    const res = await client.get("/{n}s", {{ params: {{ ids: slice.join(",") }} }});
    if (res.status !== 200) {{
      throw new Error(`batch at ${{i}} failed with ${{res.status}}`);
    }}
    results.push(...res.data.items);
  }}
  return results;
}}
'''


def rs_checked(rng):
    f, n = ident(rng), rng.choice(NOUNS)
    return f'''/// Sums the sizes of all {n}s, or `None` if the total overflows a `u64`.
pub fn {f}(sizes: &[u64]) -> Option<u64> {{
    sizes.iter().try_fold(0u64, |acc, &s| acc.checked_add(s))
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn overflow_is_none() {{
        assert_eq!({f}(&[1, 2, 3]), Some(6));
        assert_eq!({f}(&[u64::MAX, 1]), None);
    }}
}}
'''


def rs_lru(rng):
    t = pascal(rng.choice(NOUNS)) + "Cache"
    return f'''use std::collections::{{HashMap, VecDeque}};

/// A small LRU cache: `get` refreshes an entry, `put` evicts the oldest when full.
pub struct {t}<V> {{
    capacity: usize,
    map: HashMap<String, V>,
    order: VecDeque<String>,
}}

impl<V> {t}<V> {{
    pub fn new(capacity: usize) -> Self {{
        assert!(capacity > 0, "capacity must be positive");
        Self {{ capacity, map: HashMap::new(), order: VecDeque::new() }}
    }}

    pub fn get(&mut self, key: &str) -> Option<&V> {{
        if self.map.contains_key(key) {{
            self.order.retain(|k| k != key);
            self.order.push_back(key.to_string());
        }}
        self.map.get(key)
    }}

    pub fn put(&mut self, key: String, value: V) {{
        if self.map.insert(key.clone(), value).is_none() && self.map.len() > self.capacity {{
            if let Some(old) = self.order.pop_front() {{
                self.map.remove(&old);
            }}
        }}
        self.order.retain(|k| k != &key);
        self.order.push_back(key);
    }}
}}
'''


def rs_parse(rng):
    f = ident(rng)
    return f'''use std::num::ParseIntError;

/// Parses a comma-separated list of ranges such as `1-3,7,10-12` into the numbers it covers.
pub fn {f}(spec: &str) -> Result<Vec<u32>, ParseIntError> {{
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {{
        match part.split_once('-') {{
            Some((a, b)) => out.extend(a.parse::<u32>()?..=b.parse::<u32>()?),
            None => out.push(part.parse()?),
        }}
    }}
    out.sort_unstable();
    out.dedup();
    Ok(out)
}}
'''


FUNCTIONS = [("python", py_dedupe), ("python", py_retry), ("python", py_window),
             ("python", py_bsearch), ("python", py_parse_kv), ("python", py_topo),
             ("javascript", js_debounce), ("javascript", js_group), ("javascript", js_fetch),
             ("rust", rs_checked), ("rust", rs_lru), ("rust", rs_parse)]


# ---------------------------------------------------------------- boilerplate

APACHE = '''# Copyright {year} {org}
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

__all__ = ["{name}"]
'''


def bp_license(rng):
    org = rng.choice(["Example Corp", "The Widget Authors", "Acme Labs"])
    return "python", APACHE.format(year=rng.randint(2015, 2024), org=org, name=ident(rng))


def bp_getters(rng):
    cls = pascal(rng.choice(NOUNS)) + "Dto"
    fields = rng.sample(["id", "name", "createdAt", "updatedAt", "owner", "status", "price",
                         "quantity", "email", "version"], 6)
    lines = [f"public class {cls} {{"]
    lines += [f"    private String {x};" for x in fields]
    for x in fields:
        cap = x[0].upper() + x[1:]
        lines += ["", f"    public String get{cap}() {{", f"        return this.{x};", "    }",
                  "", f"    public void set{cap}(String {x}) {{", f"        this.{x} = {x};",
                  "    }"]
    lines.append("}")
    return "java", "\n".join(lines) + "\n"


def bp_minified(rng):
    names = [rng.choice("abcdefghijklmnop") for _ in range(40)]
    parts = []
    for i in range(30):
        a, b = names[i], names[i + 1]
        parts.append(f"function {a}{i}({b}){{return {b}&&{b}.{rng.choice(NOUNS)}||{i}}}")
    return "javascript", "!function(){\"use strict\";" + ";".join(parts) + "}();\n"


def bp_enum(rng):
    t = pascal(rng.choice(NOUNS)) + "Kind"
    variants = [f"{pascal(rng.choice(NOUNS))}{i}" for i in range(18)]
    body = "\n".join(f"    {v} = {i}," for i, v in enumerate(variants))
    return "rust", (f"// @generated by protoc-gen-rust. DO NOT EDIT.\n"
                    f"#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\n#[repr(i32)]\n"
                    f"pub enum {t} {{\n{body}\n}}\n")


BOILERPLATE = [bp_license, bp_getters, bp_minified, bp_enum]


# ---------------------------------------------------------------- commits and issues

EDITS = [
    ("return out", "return list(out)", "Return a list so callers can index the result"),
    ("raise ValueError", "raise TypeError", "Raise TypeError for malformed input"),
    ("    for ", "    # Iterate in input order.\n    for ", "Document the iteration order"),
    ("let mut out = Vec::new();", "let mut out = Vec::with_capacity(16);",
     "Preallocate the output vector"),
    ("const results = [];", "const results = [];\n  if (ids.length === 0) return results;",
     "Skip the request when there are no ids"),
    ("clearTimeout(timer);", "if (timer !== null) clearTimeout(timer);",
     "Only clear a pending timer"),
]


def make_commit(rng):
    for _ in range(50):
        lang, gen = rng.choice(FUNCTIONS)
        before = gen(rng)
        edit = rng.choice(EDITS)
        if edit[0] in before:
            after = before.replace(edit[0], edit[1], 1)
            break
    else:
        raise RuntimeError("no applicable edit")
    ext = {"python": "py", "javascript": "js", "rust": "rs"}[lang]
    path = f"src/{rng.choice(NOUNS)}/{rng.choice(VERBS)}.{ext}"
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path}", f"b/{path}", n=2))
    body = rng.choice([
        "The previous behaviour surprised callers in the batch importer.",
        "Found while reviewing the flaky integration test.",
        "No functional change for existing callers.",
        "Follow-up to the review comments on the last release.",
    ])
    sha = "%040x" % rng.getrandbits(160)
    text = f"commit {sha}\n\n    {edit[2]}\n\n    {body}\n\n{diff}"
    return lang, text


ISSUES = [
    ("{f} drops the last element", "When the input length is not a multiple of the window, "
     "the final partial window is silently dropped:", "Is this intended? I expected a shorter "
     "last window, or at least an error.", "It is intended, but undocumented. A `partial=True` "
     "flag would be a reasonable addition; PRs welcome."),
    ("Crash when calling {f} with an empty list", "Minimal reproduction:",
     "Traceback points at the first index access.", "Thanks for the report. The guard was "
     "lost in the refactor; fixed on main, will be in the next patch release."),
    ("{f} is slow on large inputs", "Profiling shows most of the time is spent here:",
     "With 1M items this takes 40 s on my laptop.", "The inner `retain` makes it quadratic. "
     "Switching to an index map keeps it linear; see the linked PR."),
    ("Unexpected result from {f} with duplicates", "This snippet:",
     "returns the later duplicate instead of the first one.", "Confirmed. The docs say first "
     "occurrence wins, so this is a bug in the comparison."),
]


def make_issue(rng):
    lang, gen = rng.choice(FUNCTIONS)
    code = gen(rng)
    first = code.splitlines()
    snippet = "\n".join(first[: min(len(first), rng.randint(6, 12))])
    title, intro, detail, answer = rng.choice(ISSUES)
    fname = ident(rng)
    users = rng.sample(["octo-dev", "mlin", "kpatel", "jsmith", "datawrangler", "rustacean42"], 3)
    text = (f"# {title.format(f=fname)}\n\n**{users[0]}** opened this issue\n\n{intro}\n\n"
            f"```{lang}\n{snippet}\n```\n\n{detail}\n\n---\n**{users[1]}** commented\n\n"
            f"{answer}\n\n---\n**{users[2]}** commented\n\n"
            f"{rng.choice(['+1, hitting the same thing.', 'Workaround until then: sort the input first.', 'Closing as fixed.'])}\n")
    return lang, text


# ---------------------------------------------------------------- general prose

TOPICS = {
    "cooking": [
        "Bread dough needs time more than effort: a long, cool rise develops flavour that kneading alone cannot.",
        "Salting vegetables before roasting draws out water, which lets the surface brown instead of steam.",
        "A sharp knife is safer than a dull one, because it goes where it is pointed instead of slipping.",
        "Stock made from roasted bones is darker and deeper than stock made from raw ones.",
        "Resting meat after cooking lets the juices settle back into the fibres rather than running onto the board.",
        "Most home recipes can be halved without trouble, but baking powder and yeast rarely scale exactly.",
        "Fresh herbs go in at the end of cooking; dried herbs need heat and time to release their oils.",
        "A pinch of acid, such as lemon juice or vinegar, often fixes a dish that tastes flat.",
    ],
    "gardening": [
        "Tomatoes want at least six hours of direct sun, and they punish shade with pale, watery fruit.",
        "Mulch keeps soil moist, suppresses weeds and slowly feeds the worms that keep the ground loose.",
        "Watering deeply and rarely trains roots to go down, where the soil stays cool in summer.",
        "Crop rotation keeps soil-borne diseases from building up in one bed year after year.",
        "Compost is ready when it smells like a forest floor and no longer resembles what went in.",
        "Frost dates are averages, so a cautious gardener waits a week past them before planting out.",
        "Bees visit flowers in clusters, which is why planting herbs in groups helps pollination.",
    ],
    "history": [
        "The printing press did not spread knowledge overnight; for decades most printed books were religious texts.",
        "Roman roads were built with layered foundations, which is why some still carry traffic today.",
        "Trade routes moved ideas as well as goods, from numerals to recipes to religious beliefs.",
        "Many medieval towns grew around river crossings, where travellers had to stop and pay tolls.",
        "The telegraph shrank the time news took to cross a continent from weeks to minutes.",
        "Archives are incomplete by nature: what survives is often what someone chose to keep.",
        "Early railways ran on local time until timetables forced the adoption of standard time zones.",
    ],
    "astronomy": [
        "The light from distant galaxies left them long before the Earth had formed.",
        "Planets do not twinkle as much as stars because they appear as tiny discs rather than points.",
        "A total solar eclipse is possible because the Moon is both smaller and much closer than the Sun.",
        "Comets brighten as they approach the Sun, when ice turns to gas and drags dust into a tail.",
        "Telescopes on mountains sit above much of the water vapour that blurs and absorbs starlight.",
        "The seasons come from the tilt of the Earth's axis, not from its changing distance to the Sun.",
        "Meteor showers happen when the Earth crosses the trail of debris left by a comet.",
    ],
    "health": [
        "Regular sleep at consistent times does more for alertness than an occasional long lie-in.",
        "Walking briskly for half an hour most days lowers the risk of several chronic diseases.",
        "Thirst is a reasonable guide to hydration for most healthy adults in a mild climate.",
        "Stretching before exercise matters less than warming up with lighter versions of the same movement.",
        "Washing hands with soap for twenty seconds removes most germs picked up during the day.",
        "Strength training keeps bones dense, which matters more with every passing decade.",
    ],
    "economics": [
        "Prices carry information: a rising price signals scarcity long before any report does.",
        "Inflation quietly taxes savings held as cash, which is why central banks watch it closely.",
        "Comparative advantage explains why two countries can both gain from trade even when one is better at everything.",
        "Small fees compound over decades, so the cost of a fund matters as much as its past returns.",
        "Markets can stay irrational for a long time, and forecasts tend to be confident rather than correct.",
        "Public goods such as lighthouses are hard to fund privately because nobody can be excluded from using them.",
    ],
    "travel": [
        "Trains often beat planes on short routes once security queues and airport transfers are counted.",
        "Learning a few polite phrases in the local language changes how strangers respond to a visitor.",
        "Packing light means fewer choices each morning and less to carry up station stairs.",
        "Markets are a good first stop in a new city: they show what people eat and what things cost.",
        "Jet lag eases faster when meals and daylight follow the new time zone from the first day.",
        "Off-season trips trade warm weather for quiet streets and cheaper rooms.",
    ],
    "music": [
        "Practising slowly with a metronome builds the accuracy that speed later depends on.",
        "A melody is memorable when it repeats just enough to be learned and varies just enough to surprise.",
        "Orchestras tune to the oboe because its pitch is steady and its tone cuts through the other instruments.",
        "Recording at home became practical once affordable microphones and laptops replaced tape machines.",
        "Rhythm is learned through the body first; clapping a pattern helps before playing it.",
        "Many folk songs survive in several versions, each shaped by the singers who carried it.",
    ],
    "nature": [
        "Rivers carve valleys slowly, but a single flood can move more sediment than a decade of normal flow.",
        "Migrating birds navigate using the Sun, the stars and the Earth's magnetic field.",
        "Forests store water in their soil and release it gradually, evening out the flow of streams.",
        "Coral reefs cover a small fraction of the ocean floor yet shelter a large share of marine species.",
        "Wolves returning to a landscape can change where deer graze, and with it how riverbanks grow.",
        "Lichens are partnerships between a fungus and an alga, and they colonise bare rock before most plants.",
    ],
    "education": [
        "Retrieval practice, such as answering questions from memory, beats rereading notes for long-term learning.",
        "Spacing study sessions over days helps more than cramming the same hours into one night.",
        "Students learn more when they explain an idea in their own words than when they copy a definition.",
        "Feedback is most useful when it arrives soon and points at what to change next.",
        "Worked examples help beginners, while experts learn more from solving problems on their own.",
        "Reading aloud to children builds vocabulary that everyday conversation rarely reaches.",
    ],
}

CONNECTIVES = ["", "", "", "In practice, ", "Of course, ", "Still, ", "As a rule, ", "Often, "]


def make_paragraph(rng, topic):
    sentences = rng.sample(TOPICS[topic], rng.randint(3, 5))
    out = []
    for i, s in enumerate(sentences):
        c = rng.choice(CONNECTIVES) if i else ""
        out.append(c + (s[0].lower() + s[1:] if c else s))
    return " ".join(out)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    rng = random.Random(SEED)

    code = []
    for i in range(N_CODE):
        r = rng.random()
        boilerplate = False
        if r < 0.2:
            gen = rng.choice(BOILERPLATE)
            lang, text = gen(rng)
            kind, template, boilerplate = "function", gen.__name__, True
        elif r < 0.55:
            lang, gen = rng.choice(FUNCTIONS)
            text, kind, template = gen(rng), "function", gen.__name__
        elif r < 0.8:
            (lang, text), kind, template = make_commit(rng), "commit", "commit"
        else:
            (lang, text), kind, template = make_issue(rng), "issue", "issue"
        code.append({"id": f"code-{i:04d}", "text": text,
                     "metadata": {"kind": kind, "lang": lang, "boilerplate": boilerplate,
                                  "template": template}})

    general = []
    topics = sorted(TOPICS)
    for i in range(N_GENERAL):
        topic = topics[i % len(topics)]
        general.append({"id": f"general-{i:04d}", "text": make_paragraph(rng, topic),
                        "metadata": {"topic": topic}})

    for name, rows in (("code.jsonl", code), ("general.jsonl", general)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
