"""The documentation holds to the binary.

- Code: every C block of README.md, plugins/*/README.md and the man pages
  builds as a plugin with -Wall -Wextra -Werror against include/, and
  `pmhost check` accepts each; the README's example runs as the README says
  (confirmation lines, log line identity).  The rule that tells a whole
  plugin from a fragment: in Markdown, a block tagged `c` is a whole plugin,
  and a block with a line `#include <pmhost.h>` or `PMHOST_PLUGIN;` must be
  tagged `c`; a fragment is left untagged and has neither line.  In the man
  pages, a literal block (.Bd -literal) with either line is a whole plugin.
- Commands and exit codes: the command list (with each command's options)
  and the meanings of exit codes 0, 1 and 2 agree across README.md,
  pmhost(1) and `pmhost --help`; `start` is named as run's other name in
  all three.
- Config keys: every key of host/config.c's key table (which the binary
  confirms it accepts) is documented in pmhost.json(5) and in README.md,
  and nothing else is; every config shown in the docs uses known keys only.
"""

import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRC = harness.SOURCE
README = os.path.join(SRC, "README.md")
MAN1 = os.path.join(SRC, "man", "pmhost.1")
MAN5 = os.path.join(SRC, "man", "pmhost.json.5")
CONFIG_C = os.path.join(SRC, "host", "config.c")
CC = os.environ.get("CC", "cc")
CFLAGS = ["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
          "-I" + os.path.join(SRC, "include")]

# A line that only a plugin's source has.
PLUGIN_MARK_RX = re.compile(
    r"^\s*(#\s*include\s*<pmhost\.h>|PMHOST_PLUGIN\s*;)", re.M)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rel(path):
    return os.path.relpath(path, SRC)


def plugin_readmes():
    return sorted(glob.glob(os.path.join(SRC, "plugins", "*", "README.md")))


# -- Markdown ----------------------------------------------------------------

def markdown_blocks(path):
    """[(line, lang, text)] of the fenced code blocks of a Markdown file."""
    out, fence = [], None
    for n, line in enumerate(read(path).splitlines(), 1):
        if fence is None:
            m = re.match(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)", line)
            if m:
                fence, lang, start, body = m.group(1), m.group(2).lower(), \
                    n, []
        elif line.strip() == fence:
            out.append((start, lang, "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(line)
    return out


def markdown_section(text, heading):
    """The text under a heading line (exactly as written) up to the next
    heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    for i in range(start, len(lines)):
        m = re.match(r"^(#+) ", lines[i])
        if m and len(m.group(1)) <= level:
            return "\n".join(lines[start:i])
    return "\n".join(lines[start:])


# -- mdoc (the man pages) ---------------------------------------------------

MDOC_MACROS = set("""Ad An Ap Ar At Bd Bf Bk Bl Bq Brq Bsx Bx Cd Cm D1 Db Dd
Dl Dq Dt Dv Dx Ed Ef Ek El Em En Eo Er Es Ev Ex Fa Fc Fd Fl Fn Fo Fr Ft Fx
Hf Ic In It Lb Li Lk Lp Ms Mt Nd Nm No Ns Nx Oc Oo Op Os Ot Ox Pa Pc Pf Po
Pp Pq Qc Ql Qo Qq Re Rs Rv Sc Sh Sm So Sq Ss St Sx Sy Ta Tn Ux Va Vt Xc Xo
Xr""".split())


ROFF_ESCAPES = {"e": "\\", "(dq": '"', "(aq": "'", "(em": "-", "-": "-",
                "&": ""}


def roff_unescape(s):
    """The text of roff escapes as they render in a literal block."""
    return re.sub(r"\\(e|\(dq|\(aq|\(em|-|&)",
                  lambda m: ROFF_ESCAPES[m.group(1)], s)


def literal_blocks(lines, where, first=1):
    """[(line, text)] of the .Bd -literal blocks among mdoc lines (the
    first of them being line `first` of `where`).  A line of such a block
    that starts with '.' would be a request, not text: that is a fault of
    the page (write '\\&.')."""
    out, body = [], None
    for n, line in enumerate(lines, first):
        if body is None:
            if line.startswith(".Bd -literal"):
                body, start = [], n
        elif line.startswith(".Ed"):
            out.append((start, "\n".join(body) + "\n"))
            body = None
        elif line.startswith((".", "'")):
            raise AssertionError("%s:%d: a request inside a literal block: "
                                 "%s" % (where, n, line))
        else:
            body.append(roff_unescape(line))
    return out


def man_literal_blocks(path):
    """[(line, text)] of the .Bd -literal blocks of a man page."""
    return literal_blocks(read(path).splitlines(), rel(path))


def mdoc_words(line):
    """The rendered words of one mdoc line: macro names dropped, the
    arguments of Fl given their '-'."""
    if not line.startswith("."):
        return roff_unescape(line).split()
    words, flag = [], False
    for tok in roff_unescape(line[1:]).split():
        if tok in MDOC_MACROS:
            flag = tok == "Fl"
        elif flag and tok not in ("|", ",", ";", ".", ")", "("):
            words.append("-" + tok)
        else:
            words.append(tok)
    return words


def man_section(path, name):
    """The lines of a man page's section (.Sh NAME)."""
    lines = read(path).splitlines()
    start = lines.index(".Sh " + name) + 1
    end = next((i for i in range(start, len(lines))
                if lines[i].startswith(".Sh ")), len(lines))
    return lines[start:end]


# -- what the sources say ---------------------------------------------------

OPTION_RX = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def usage_entries(lines):
    """{command: set of options} from usage lines 'pmhost CMD ...'; the
    line of global options ('pmhost --help | ... | help ...') gives
    '(global)' and, when it names it, 'help'."""
    out = {}
    for line in lines:
        words = line.split()
        assert words[0] == "pmhost", line
        opts = set(OPTION_RX.findall(line))
        if words[1].startswith("-"):
            out.setdefault("(global)", set()).update(opts)
            if "help" in words:
                out.setdefault("help", set())
        else:
            out.setdefault(words[1], set()).update(opts)
    return out


def readme_usage():
    text = markdown_section(read(README), "## Commands")
    lines = re.search(r"^```\n(.*?)^```", text, re.M | re.S).group(1)
    return usage_entries(lines.splitlines())


def readme_exit_codes():
    """{code: text} of the README's exit code list."""
    text = markdown_section(read(README), "## Commands")
    block = re.search(r"^\*\*Exit codes:\*\*\n(.*?)(?:\n\n|\Z)", text,
                      re.M | re.S).group(1)
    return {int(m.group(1)): m.group(2) for m in
            re.finditer(r"^- (\d+): (.*?)(?=^- \d+:|\Z)", block,
                        re.M | re.S)}


def man1_usage():
    """{command: set of options} from pmhost(1)'s SYNOPSIS: an entry per
    .Nm, its command the first .Cm."""
    entries = []
    for line in man_section(MAN1, "SYNOPSIS"):
        if line == ".Nm":
            entries.append([])
        elif entries:
            entries[-1].append(line)
    out = {}
    for entry in entries:
        cmd = next((ln.split()[1] for ln in entry
                    if ln.startswith(".Cm ")), "(global)")
        opts = set()
        for ln in entry:
            opts.update(w for w in mdoc_words(ln) if OPTION_RX.fullmatch(w))
        out.setdefault(cmd, set()).update(opts)
    return out


def man1_command_items():
    """The commands of pmhost(1)'s Commands list (.It Cm NAME ...)."""
    return {ln.split()[2] for ln in read(MAN1).splitlines()
            if ln.startswith(".It Cm ")}


def man1_exit_codes():
    out, code = {}, None
    for line in man_section(MAN1, "EXIT STATUS"):
        m = re.match(r"^\.It (\d+)$", line)
        if m:
            code = int(m.group(1))
            out[code] = ""
        elif line.startswith((".El", ".Bl")):
            code = None
        elif code is not None:
            out[code] += " " + " ".join(mdoc_words(line))
    return out


def help_section(text, title):
    """The lines of `pmhost --help` under 'title:' up to a blank line."""
    lines = text.splitlines()
    start = lines.index(title + ":") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i]),
               len(lines))
    return lines[start:end]


def help_exit_codes(text):
    out, code = {}, None
    for line in help_section(text, "exit status"):
        m = re.match(r"^  (\d+)  (.*)$", line)
        if m:
            code = int(m.group(1))
            out[code] = m.group(2)
        else:
            out[code] += " " + line.strip()
    return out


def normalise(text):
    """Lower case, without quotes, markup and parentheses, one space."""
    text = re.sub(r"[`'\"*()]", " ", text.lower())
    return " ".join(text.split())


# Phrases the exit code meanings are compared by; each source must name,
# under each code, the same ones, and at least the contract's.
EXIT_PHRASES = ["success", "runtime failure", "not running", "master died",
                "already running", "timeout",
                "worker failed before run -d was ready", "run-once",
                "canary", "run dir was refused", "usage", "config error",
                "plugin that cannot be loaded", "work_check"]
EXIT_REQUIRED = {0: {"success"},
                 1: {"runtime failure", "not running", "timeout"},
                 2: {"usage", "config error", "plugin that cannot be loaded"}}


def config_keys():
    """The keys of host/config.c's key table, and the names of limits."""
    src = read(CONFIG_C)
    table = re.search(r"key_specs\[K_COUNT\] = \{(.*?)^\};", src,
                      re.M | re.S).group(1)
    keys = re.findall(r"\[K_\w+\]\s*=\s*\{\s*\"(\w+)\"", table)
    limits = re.search(r"limit_names\[LIMIT_COUNT\] = \{(.*?)^\};", src,
                       re.M | re.S).group(1)
    return keys, re.findall(r"\[LIMIT_\w+\]\s*=\s*\"(\w+)\"", limits)


def man5_documented_keys():
    """The keys of pmhost.json(5)'s Keys list: .It Cm KEY [, Cm KEY] Pq."""
    lines = read(MAN5).splitlines()
    start = lines.index(".Ss Keys")
    end = next(i for i in range(start + 1, len(lines))
               if lines[i].startswith((".Ss ", ".Sh ")))
    keys = []
    for ln in lines[start:end]:
        m = re.match(r"^\.It Cm (.*?) Pq ", ln)
        if m:
            keys += [w for w in m.group(1).split() if w not in ("Cm", ",")]
    return keys, "\n".join(lines[start:end])


def readme_documented_keys():
    """The keys in the first column of the README's config table."""
    text = markdown_section(read(README), "## Config")
    keys, rows = [], {}
    for line in text.splitlines():
        m = re.match(r"^\| (`[^|]*`) \|", line)
        if m and not line.startswith("| key "):
            names = re.findall(r"`(\w+)`", m.group(1))
            keys += names
            for k in names:
                rows[k] = line
    return keys, rows


class DocsTest(harness.PmTest):

    def help_text(self):
        r = self.pm("--help", check=0)
        return r.stdout

    # -- code blocks ------------------------------------------------------

    def c_blocks(self):
        """[(name, text)] of every whole-plugin C block of the docs; fails
        on a block with a plugin's marks that the rule does not build."""
        out = []
        for path in [README] + plugin_readmes():
            for line, lang, text in markdown_blocks(path):
                where = "%s:%d" % (rel(path), line)
                if lang == "c":
                    out.append((where, text))
                else:
                    self.assertIsNone(
                        PLUGIN_MARK_RX.search(text),
                        "%s: a ```%s block with a plugin's marks: tag it "
                        "c (it is built) or drop the marks (a fragment)" %
                        (where, lang))
        for path in (MAN1, MAN5):
            for line, text in man_literal_blocks(path):
                if PLUGIN_MARK_RX.search(text):
                    out.append(("%s:%d" % (rel(path), line), text))
        return out

    def build(self, name, text):
        """Builds one block as a plugin; the .so's path."""
        base = self.path(re.sub(r"[^\w]", "_", name))
        with open(base + ".c", "w") as f:
            f.write(text)
        r = subprocess.run([CC] + CFLAGS + ["-o", base + ".so", base + ".c"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "%s does not build:\n%s" %
                         (name, r.stdout))
        return base + ".so"

    def test_every_c_block_of_the_docs_builds_and_passes_check(self):
        blocks = self.c_blocks()
        names = [n for n, _ in blocks]
        # The extraction found what is known to be there.
        self.assertTrue(any(n.startswith("README.md:") for n in names),
                        names)
        self.assertTrue(any(n.startswith("man/pmhost.json.5:")
                            for n in names), names)
        for i, (name, text) in enumerate(blocks):
            with self.subTest(block=name):
                so = self.build(name, text)
                cfg = self.config("block%d.json" % i, plugin_name=so)
                r = self.pm("check", cfg)
                self.assertEqual(r.returncode, 0, "%s: %s" % (name, r.stderr))
                self.assertEqual(r.stdout.splitlines()[-1], "ok", r.stdout)

    def test_the_readme_example_runs_as_the_readme_says(self):
        name, text = next((n, t) for n, t in self.c_blocks()
                          if n.startswith("README.md:"))
        so = self.build(name, text)
        cfg = self.config(plugin_name=so, maxWorkerNum=2, executeTimes=0,
                          executeUSleep=20000)

        r = self.pm("run", "-d", cfg, check=0)
        log = os.path.join(self.rundir, self.title + ".log")
        self.assertRegex(r.stdout, r"^%s: started \(pid \d+, 2 workers; log "
                         r"%s\)\n$" % (self.title, re.escape(log)))
        # "slot %d, call %llu, params %s" from both slots, each line in the
        # documented form TIME LEVEL PREFIX:Worker:NAME#SLOT[PID]: text.
        line_rx = (r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} info "
                   r"process_m:Worker:%s#%d\[\d+\]: slot %d, call \d+, "
                   r"params null$")
        for slot in (0, 1):
            rx = re.compile(line_rx % (re.escape(self.title), slot, slot),
                            re.M)
            self.wait_for(lambda: len(rx.findall(self.read(log))) >= 5,
                          "5 lines of slot %d in %s" % (slot, log))
        shown = self.pm("logs", "--title", self.title, "--slot", "1",
                        "-n", "5", check=0).stdout.splitlines()
        self.assertEqual(len(shown), 5, shown)
        for line in shown:
            self.assertRegex(line, r"^\S+ \w+ process_m:(Worker:%s#1\[|"
                             r"Master:%s\[\d+\]: worker 1 )" %
                             ((re.escape(self.title),) * 2))

        r = self.pm("stop", "--title", self.title, check=0)
        self.assertRegex(r.stdout, r"^%s: stopped \(2 workers, \d+\.\d s\)\n$"
                         % self.title)
        r = self.pm("status", check=0)
        self.assertEqual(r.stdout, "no task is running (run dir %s)\n" %
                         self.rundir)

    def test_every_json_block_parses_and_configs_use_known_keys(self):
        keys, limits = config_keys()
        blocks = [("%s:%d" % (rel(p), n), t)
                  for p in [README] + plugin_readmes()
                  for n, lang, t in markdown_blocks(p) if lang == "json"]
        examples = man_section(MAN5, "EXAMPLES")
        blocks += [("man/pmhost.json.5 EXAMPLES", t) for _, t in
                   literal_blocks(examples, "man/pmhost.json.5 EXAMPLES")
                   if t.startswith("{")]
        configs = 0
        for name, text in blocks:
            with self.subTest(block=name):
                try:
                    doc = json.loads(text)
                except ValueError as e:
                    self.fail("%s: not JSON: %s" % (name, e))
                if not isinstance(doc, dict) or not \
                        ("plugin" in doc or "tasks" in doc):
                    continue
                configs += 1
                for obj in [doc] + doc.get("tasks", []):
                    unknown = set(obj) - set(keys)
                    self.assertEqual(unknown, set(), "%s: unknown keys" %
                                     name)
                    bad = set(obj.get("limits", {})) - set(limits)
                    self.assertEqual(bad, set(), "%s: unknown limits" % name)
        self.assertGreaterEqual(configs, 5)

    # -- commands and exit codes ----------------------------------------

    def test_the_command_list_agrees_across_readme_man_and_help(self):
        text = self.help_text()
        sources = {
            "README.md": readme_usage(),
            "man/pmhost.1": man1_usage(),
            "pmhost --help": usage_entries(
                [ln.strip() for ln in help_section(text, "usage")]),
        }
        listed = {ln.split()[0] for ln in help_section(text, "commands")}
        helped = sources["pmhost --help"]
        self.assertEqual(listed, set(helped) - {"(global)"},
                         "pmhost --help: its command list and its usage "
                         "lines name different commands")
        for name, got in sources.items():
            with self.subTest(source=name):
                self.assertEqual(
                    sorted(got), sorted(helped),
                    "%s names the commands %s, pmhost --help %s" %
                    (name, sorted(got), sorted(helped)))
                for cmd in helped:
                    self.assertEqual(
                        got.get(cmd), helped[cmd],
                        "%s: the options of %s are %s, in pmhost --help %s"
                        % (name, cmd, sorted(got.get(cmd, ())),
                           sorted(helped[cmd])))
        missing = set(helped) - {"(global)"} - man1_command_items()
        self.assertEqual(missing, set(), "man/pmhost.1: commands without "
                         "an item in the Commands list")
        # Each command's own help shows the same usage.
        for cmd, opts in helped.items():
            if cmd in ("(global)", "help"):
                continue
            r = self.pm("help", cmd, check=0)
            first = r.stdout.splitlines()[0]
            self.assertTrue(first.startswith("usage: pmhost %s " % cmd),
                            first)
            self.assertEqual(set(OPTION_RX.findall(first)), opts, first)

    def test_start_is_named_as_another_name_for_run_everywhere(self):
        rx = re.compile(r"\bstart is another name for run\b")
        man = " ".join(" ".join(mdoc_words(ln))
                       for ln in read(MAN1).splitlines())
        for name, text in (("README.md", read(README)),
                           ("man/pmhost.1", man),
                           ("pmhost help run",
                            self.pm("help", "run", check=0).stdout)):
            with self.subTest(source=name):
                self.assertRegex(normalise(text), rx)
        r = self.pm("help", "start", check=0)
        self.assertTrue(r.stdout.startswith("usage: pmhost run "), r.stdout)

    def test_exit_codes_mean_the_same_in_readme_man_and_help(self):
        sources = {
            "README.md": readme_exit_codes(),
            "man/pmhost.1": man1_exit_codes(),
            "pmhost --help": help_exit_codes(self.help_text()),
        }
        found = {}
        for name, codes in sources.items():
            self.assertEqual(sorted(codes), [0, 1, 2],
                             "%s: exit codes %s" % (name, sorted(codes)))
            found[name] = {c: {p for p in EXIT_PHRASES
                               if p in normalise(t)}
                           for c, t in codes.items()}
            for c, need in EXIT_REQUIRED.items():
                self.assertEqual(need - found[name][c], set(),
                                 "%s: exit %d lacks" % (name, c))
        ref = found["pmhost --help"]
        for name, got in found.items():
            for c in (0, 1, 2):
                self.assertEqual(
                    got[c], ref[c],
                    "exit %d: only %s says %s; only pmhost --help says %s"
                    % (c, name, sorted(got[c] - ref[c]),
                       sorted(ref[c] - got[c])))

    # -- config keys ------------------------------------------------------

    def test_the_key_table_is_what_the_binary_accepts(self):
        keys, _ = config_keys()
        self.assertGreaterEqual(len(keys), 20, keys)
        # Every key with a value of the wrong shape, and one unknown key:
        # validation reports all problems, and only the unknown key as
        # unknown, so each key of the table is one the binary knows.
        doc = {k: [[[]]] for k in keys}
        doc["zzNoSuchKey"] = 1
        cfg = self.write("keys.json", json.dumps(doc))
        r = self.pm("check", cfg, check=2)
        unknown = [ln for ln in r.stderr.splitlines() if "unknown key" in ln]
        self.assertEqual(len(unknown), 1, r.stderr)
        self.assertIn("zzNoSuchKey: unknown key", unknown[0])

    def test_every_config_key_is_documented_in_man_and_readme(self):
        keys, limits = config_keys()
        man_keys, man_text = man5_documented_keys()
        readme_keys, rows = readme_documented_keys()
        for name, doc in (("man/pmhost.json.5", man_keys),
                          ("README.md", readme_keys)):
            with self.subTest(source=name):
                self.assertEqual(sorted(set(keys) - set(doc)), [],
                                 "%s lacks these keys" % name)
                self.assertEqual(sorted(set(doc) - set(keys)), [],
                                 "%s documents keys the binary does not "
                                 "know" % name)
        limits_item = man_text[man_text.index(".It Cm limits"):]
        limits_item = limits_item[:limits_item.index("\n.It ")]
        for lim in limits:
            self.assertIn(".Cm %s" % lim, limits_item,
                          "man/pmhost.json.5: limits lacks %s" % lim)
            self.assertIn("`%s`" % lim, rows["limits"],
                          "README.md: limits lacks %s" % lim)


if __name__ == "__main__":
    harness.main()
