// tearline subcommands. Each handler returns an exit code (see cli.h).
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <iostream>
#include <map>

#include "cli/cli.h"
#include "cli/policy_cmds.h"
#include "cli/serve.h"
#include "cli/warn_cmds.h"
#include "correlate/correlate.h"
#include "federation/federation.h"
#include "pattern/pattern.h"
#include "policy/policy.h"
#include "taxii/taxii.h"
#include "stix/stix.h"
#include "store/store.h"

namespace tearline::cli {
namespace {

constexpr size_t kImportChunk = 10000;  // objects per transaction (and progress step) during import

struct Options {
  std::vector<std::string> files;
  std::string db;
  std::string collection;
  std::string format = "auto";
  std::vector<std::string> types;
  std::string added_after;
  std::string version = "last";
  bool warnings = false;
  std::string pattern;
  std::string cases;
  std::string indicators;
  std::string observations;
  std::string identity;
  int64_t window_seconds = 86400;  //!< match: multi-observation patterns across lines
  size_t max_kept = 10000;
  std::string into;
  std::string as_partner;   //!< export --as
  std::string key;          //!< audit verify --key
  std::string file;         //!< audit verify --file
  std::string out;          //!< audit export --out
};

stix::Form FormFor(const std::string& format, const std::string& path) {
  if (format == "jsonl") return stix::Form::kJsonLines;
  if (format == "json") return stix::Form::kAuto;
  auto ends = [&](std::string_view suf) { return path.size() >= suf.size() && path.ends_with(suf); };
  return ends(".jsonl") || ends(".ndjson") ? stix::Form::kJsonLines : stix::Form::kAuto;
}

void PrintDiagnostics(const std::string& file, const stix::ValidationResult& r, bool warnings) {
  for (const auto& d : r.diagnostics) {
    if (d.severity == stix::Severity::kWarning && !warnings) continue;
    std::printf("%s: %s\n", file.c_str(), d.ToString().c_str());
  }
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tearline: %s\n", msg.c_str());
  return 2;
}

// Opens an existing database (export, stats) or creates one (import).
Result<std::unique_ptr<store::Store>> OpenDb(const std::string& path, bool create) {
  if (!create && !std::filesystem::exists(path)) return Status::Io("database " + path + " does not exist");
  return store::OpenSqlite(path);
}

int Validate(const Options& o) {
  stix::Validator v;
  bool any_invalid = false, any_io = false;
  size_t total = 0, valid = 0, warnings = 0;
  for (const auto& f : o.files) {
    auto data = ReadInput(f, stix::Limits{}.max_document_bytes);
    if (!data.ok()) {
      std::fprintf(stderr, "tearline: %s\n", data.status().message().c_str());
      any_io = true;
      continue;
    }
    auto r = v.Validate(*data, FormFor(o.format, f));
    PrintDiagnostics(f, r, o.warnings);
    total += r.total;
    valid += r.objects.size();
    warnings += r.warning_count();
    any_invalid |= !r.ok();
  }
  std::fprintf(stderr, "%zu objects checked: %zu valid, %zu invalid, %zu warnings%s\n", total, valid, total - valid,
               warnings, o.warnings || warnings == 0 ? "" : " (--warnings to list them)");
  return any_io ? 2 : any_invalid ? 1 : 0;
}

int Import(const Options& o) {
  auto db = OpenDb(o.db, true);
  if (!db.ok()) return Fail(db.status().message());
  store::Store& st = **db;
  auto coll = st.EnsureCollection(o.collection);
  if (!coll.ok()) return Fail(coll.status().message());
  stix::Validator v;
  v.set_marking_lookup([&st](std::string_view id) {
    auto r = st.HasMarkingDefinition(id);
    return r.ok() && *r;
  });
  bool any_rejected = false, any_io = false;
  size_t stored = 0, dups = 0, conflicts = 0, rejected = 0;
  // Imported objects are queued for the partner nodes the collection is pushed to (a running
  // node sends them); same transaction as the objects.
  auto targets = federation::PushTargets(st, o.collection);
  if (!targets.ok()) return Fail(targets.status().message());
  const std::vector<std::string> push_to = *targets;
  for (const auto& f : o.files) {
    auto data = ReadInput(f, stix::Limits{}.max_document_bytes);
    if (!data.ok()) {
      std::fprintf(stderr, "tearline: %s\n", data.status().message().c_str());
      any_io = true;
      continue;
    }
    auto r = v.Validate(*data, FormFor(o.format, f));
    data->clear();
    data->shrink_to_fit();
    PrintDiagnostics(f, r, o.warnings);
    Progress bar("importing " + f, r.objects.size());
    size_t f_stored = 0, f_dups = 0, f_conf = 0;
    std::span<const stix::Object> all(r.objects);
    for (size_t i = 0; i < all.size(); i += kImportChunk) {
      auto chunk = all.subspan(i, std::min(kImportChunk, all.size() - i));
      auto put = st.Put(o.collection, chunk, {}, push_to);
      if (!put.ok()) {
        bar.Finish();
        std::fprintf(stderr, "tearline: %s: storing failed after %zu objects: %s\n", f.c_str(), i,
                     put.status().message().c_str());
        return 2;
      }
      for (size_t k = 0; k < chunk.size(); ++k) {
        if (put->outcomes[k] == store::PutOutcome::kConflict) {
          std::printf("%s: error: object %zu (%s): a different object with the same id and modified is already "
                      "stored; the stored one stands [version-conflict; STIX 2.1 §3.6 Versioning]\n",
                      f.c_str(), chunk[k].index, chunk[k].id.c_str());
        }
      }
      f_stored += put->stored;
      f_dups += put->duplicates;
      f_conf += put->conflicts;
      bar.Update(i + chunk.size());
    }
    bar.Finish();
    std::fprintf(stderr, "%s: %zu objects: %zu stored, %zu duplicates, %zu conflicts, %zu rejected\n", f.c_str(),
                 r.total, f_stored, f_dups, f_conf, r.rejected + (r.document_error ? 1 : 0));
    stored += f_stored;
    dups += f_dups;
    conflicts += f_conf;
    rejected += r.rejected;
    any_rejected |= !r.ok() || f_conf > 0;
  }
  if (o.files.size() > 1) {
    std::fprintf(stderr, "total: %zu stored, %zu duplicates, %zu conflicts, %zu rejected\n", stored, dups, conflicts,
                 rejected);
  }
  std::string files;
  for (const auto& f : o.files) files += (files.empty() ? "" : ", ") + f;
  if (stored > 0 && !AuditChange(st, o.db, "ingest", o.collection,
                                 "import of " + files + ": " + std::to_string(stored) + " stored, " +
                                     std::to_string(dups) + " duplicates, " + std::to_string(conflicts) +
                                     " conflicts, " + std::to_string(rejected) + " rejected")) {
    return 2;
  }
  return any_io ? 2 : any_rejected ? 1 : 0;
}

int Export(const Options& o) {
  store::Query q;
  q.collection = o.collection;
  q.types = o.types;
  q.limit = 5000;
  q.versions = {};
  if (o.version == "all") q.versions.all = true;
  else if (o.version == "first") q.versions.first = true;
  else if (o.version == "last") q.versions.last = true;
  else return Fail("--version must be all, first or last");
  if (!o.added_after.empty()) {
    auto ts = stix::ParseTimestamp(o.added_after);
    if (!ts) return Fail("--added-after must be an RFC 3339 UTC timestamp like 2024-01-15T09:30:00.000Z");
    q.added_after = stix::ToMicros(*ts);
  }
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto c = (*db)->GetCollection(o.collection); !c.ok()) return Fail(c.status().message());
  std::string out = "{\"type\":\"bundle\",\"id\":\"bundle--" + stix::NewUuid4() + "\"";
  bool first = true;
  // The operator exporting locally is a reader of everything, but the objects still pass the Releaser.
  // With --as PARTNER: exactly what that partner would receive (nothing is recorded as sent).
  policy::Releaser releaser;
  policy::Recipient to{"cli-export", true};
  std::optional<policy::PartnerRecipient> partner;
  policy::Audience audience;
  if (!o.as_partner.empty()) {
    auto p = (*db)->GetPartner(o.as_partner);
    if (!p.ok()) return Fail(p.status().message());
    auto a = (*db)->GetAudience(o.collection);
    if (!a.ok()) return Fail(a.status().message());
    auto c = (*db)->GetCollection(o.collection);
    if (c.ok()) {
      if (auto a2 = (*db)->GetAudience(c->name); a2.ok()) a = a2;
    }
    partner = policy::ToRecipient(*p);
    audience = policy::ToAudience(*a);
    to.principal = "cli-export-as";
    to.partner = &*partner;
    to.audience = &audience;
    auto node = (*db)->NodeIdentity();
    if (!node.ok()) return Fail(node.status().message());
    to.node_identity = *node;
  }
  while (true) {
    auto page = (*db)->Query(q);
    if (!page.ok()) return Fail(page.status().message());
    auto released = releaser.ReleaseFrom(**db, o.collection, std::move(page->objects), to);
    if (!released.ok()) return Fail(released.status().message());
    for (const auto& obj : *released) {
      out += first ? ",\"objects\":[" : ",";
      first = false;
      out += obj.json;
      if (out.size() > (1 << 20)) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        out.clear();
      }
    }
    if (!page->more) break;
    q.cursor = page->next;
  }
  out += first ? "}\n" : "]}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 2;
}

int Stats(const Options& o) {
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto colls = (*db)->ListCollections();
  auto stats = (*db)->Stats();
  if (!colls.ok()) return Fail(colls.status().message());
  if (!stats.ok()) return Fail(stats.status().message());
  std::printf("%-24s %-36s %10s %10s\n", "collection", "type", "objects", "versions");
  std::map<std::string, std::pair<int64_t, int64_t>> per_coll;
  for (const auto& t : *stats) {
    std::printf("%-24s %-36s %10lld %10lld\n", t.collection.c_str(), t.type.c_str(), static_cast<long long>(t.objects),
                static_cast<long long>(t.versions));
    per_coll[t.collection].first += t.objects;
    per_coll[t.collection].second += t.versions;
  }
  std::printf("\n");
  int64_t all_o = 0, all_v = 0;
  for (const auto& c : *colls) {
    auto [objs, vers] = per_coll[c.name];
    std::printf("%-24s %-36s %10lld %10lld\n", c.name.c_str(), ("(total, id " + c.id + ")").c_str(),
                static_cast<long long>(objs), static_cast<long long>(vers));
    all_o += objs;
    all_v += vers;
  }
  std::printf("%-24s %-36s %10lld %10lld\n", "all collections", "", static_cast<long long>(all_o),
              static_cast<long long>(all_v));
  return 0;
}

int PatternCheck(const Options& o) {
  auto st = pattern::CheckSyntax(o.pattern);
  if (st.ok()) {
    std::printf("valid\n");
    return 0;
  }
  std::printf("invalid: %s\n", st.message().c_str());
  return 1;
}

// One case: a pattern and the observations (bundle, envelope or array) it runs against.
// Returns "true", "false" or "error: ...".
std::string EvalOne(std::string_view pattern_text, std::string_view observations) {
  auto p = pattern::Parse(pattern_text);
  if (!p.ok()) return "error: invalid pattern: " + p.status().message();
  auto obs = pattern::Observations::FromJson(observations);
  if (!obs.ok()) return "error: " + obs.status().message();
  auto r = pattern::Matches(*p, *obs);
  if (!r.ok()) return "error: " + r.status().message();
  return *r ? "true" : "false";
}

int PatternEval(const Options& o) {
  if (!o.cases.empty()) {
    if (!o.pattern.empty() || !o.files.empty()) return Fail("--cases runs alone: no --pattern or FILE");
    auto data = ReadInput(o.cases, stix::Limits{}.max_document_bytes);
    if (!data.ok()) return Fail(data.status().message());
    simdjson::dom::parser parser;
    size_t start = 0;
    std::string out;
    while (start < data->size()) {
      size_t end = data->find('\n', start);
      if (end == std::string::npos) end = data->size();
      std::string_view line(data->data() + start, end - start);
      start = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      simdjson::dom::element c;
      std::string_view pat;
      simdjson::dom::element od;
      if (parser.parse(line.data(), line.size(), true).get(c) || c["pattern"].get(pat) ||
          c["observed_data"].get(od)) {
        out += "error: a case line needs {\"pattern\": \"...\", \"observed_data\": [...]}\n";
        continue;
      }
      std::string pattern_text(pat);
      std::string observations = simdjson::minify(od);
      out += EvalOne(pattern_text, observations) + "\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  if (o.pattern.empty() || o.files.size() != 1) return Fail("pattern eval needs --pattern PATTERN and one FILE, or --cases FILE");
  auto data = ReadInput(o.files[0], stix::Limits{}.max_document_bytes);
  if (!data.ok()) return Fail(data.status().message());
  std::string r = EvalOne(o.pattern, *data);
  std::printf("%s\n", r.c_str());
  return r == "true" ? 0 : r == "false" ? 1 : 2;
}

// Loads the STIX-pattern indicators of a bundle/envelope/array into `m`.
Status LoadIndicators(std::string_view json, pattern::Matcher* m, size_t* skipped) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size(), true).get(root)) return Status::Invalid("indicators are not valid JSON");
  simdjson::dom::array objects;
  if (root.get(objects) && root["objects"].get(objects)) return Status::Invalid("expected a bundle, envelope or array");
  for (auto o : objects) {
    std::string_view type, id, pattern_type, pat;
    if (o["type"].get(type) || type != "indicator" || o["id"].get(id) || o["pattern"].get(pat)) continue;
    if (o["pattern_type"].get(pattern_type) || pattern_type != "stix") continue;
    if (!m->Add(std::string(id), pat).ok()) ++*skipped;
  }
  return Status::Ok();
}

int Match(const Options& o) {
  pattern::Matcher matcher;
  size_t skipped = 0;
  if (!o.indicators.empty()) {
    auto data = ReadInput(o.indicators, stix::Limits{}.max_document_bytes);
    if (!data.ok()) return Fail(data.status().message());
    if (auto st = LoadIndicators(*data, &matcher, &skipped); !st.ok()) return Fail(o.indicators + ": " + st.message());
  } else {
    if (o.db.empty() || o.collection.empty()) return Fail("give --indicators FILE, or --db PATH and --collection NAME");
    auto db = OpenDb(o.db, false);
    if (!db.ok()) return Fail(db.status().message());
    store::Query q;
    q.collection = o.collection;
    q.types = {"indicator"};
    q.limit = 5000;
    std::string all = "[";
    while (true) {
      auto page = (*db)->Query(q);
      if (!page.ok()) return Fail(page.status().message());
      for (const auto& obj : page->objects) all += (all.size() > 1 ? "," : "") + obj.json;
      if (!page->more) break;
      q.cursor = page->next;
    }
    all += "]";
    if (auto st = LoadIndicators(all, &matcher, &skipped); !st.ok()) return Fail(st.message());
  }
  std::string identity = o.identity.empty() ? taxii::NodeIdentity() : o.identity;
  std::fprintf(stderr, "tearline match: %zu indicators (%zu evaluated for every batch, %zu skipped: not parsable)\n",
               matcher.size(), matcher.unanchored(), skipped);
  // Lines of a stream are batches of one stream: multi-observation patterns combine them.
  pattern::MatchStream stream(pattern::MatchStream::Options{o.window_seconds, o.max_kept});
  auto run_batch = [&](std::string_view json, const std::string& where) {
    auto found = stream.Match(matcher, json);
    if (!found.ok()) {
      std::fprintf(stderr, "tearline: %s: %s\n", where.c_str(), found.status().message().c_str());
      return false;
    }
    std::string out;
    for (const auto& s : *found) out += taxii::SightingJson(s, identity) + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  bool ok = true;
  bool lines = o.observations == "-" || FormFor(o.format, o.observations) == stix::Form::kJsonLines;
  if (lines) {
    // Streaming: one batch per line (a bundle, envelope or array of observed-data and SCOs).
    std::FILE* in = o.observations == "-" ? stdin : std::fopen(o.observations.c_str(), "rb");
    if (!in) return Fail("cannot read " + o.observations);
    std::string line;
    size_t number = 0;
    int c;
    while (true) {
      line.clear();
      while ((c = std::fgetc(in)) != EOF && c != '\n') line += static_cast<char>(c);
      ++number;
      if (line.find_first_not_of(" \t\r") != std::string::npos) {
        ok &= run_batch(line, o.observations + " line " + std::to_string(number));
      }
      if (c == EOF) break;
    }
    if (in != stdin) std::fclose(in);
  } else {
    auto data = ReadInput(o.observations, stix::Limits{}.max_document_bytes);
    if (!data.ok()) return Fail(data.status().message());
    ok = run_batch(*data, o.observations);
  }
  return ok ? 0 : 2;
}

Result<std::vector<audit::Entry>> ReadWholeAudit(store::Store& db) {
  std::vector<audit::Entry> all;
  int64_t after = 0;
  while (true) {
    auto page = db.ReadAudit(after, 10000);
    if (!page.ok()) return page.status();
    if (page->empty()) break;
    after = page->back().seq;
    all.insert(all.end(), page->begin(), page->end());
  }
  return all;
}

// audit verify: the node's own log (--db), or a partner's export (--file) with the node's key (--key).
int AuditVerify(const Options& o) {
  if (!o.file.empty()) {
    if (o.key.empty()) return Fail("verifying an export needs the node's public key: --key HEX");
    auto text = ReadInput(o.file, size_t{1} << 30);
    if (!text.ok()) return Fail(text.status().message());
    std::vector<audit::ExportLine> lines;
    std::vector<audit::Checkpoint> cps;
    std::string err;
    if (!audit::ParseExport(*text, &lines, &cps, &err)) return Fail(o.file + ": " + err);
    auto r = audit::VerifyExport(lines, cps, o.key);
    size_t own = std::count_if(lines.begin(), lines.end(), [](const audit::ExportLine& l) { return l.full; });
    std::printf("%s (%zu entries about you)\n", r.message.c_str(), own);
    return r.ok ? 0 : 1;
  }
  if (o.db.empty()) return Fail("give --db DATABASE (or --file EXPORT --key HEX)");
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto all = ReadWholeAudit(**db);
  if (!all.ok() && all.status().code() == Code::kInvalid) {  // a damaged chain file: verification fails
    std::printf("audit chain damaged: %s\n", all.status().message().c_str());
    return 1;
  }
  if (!all.ok()) return Fail(all.status().message());
  auto cps = (*db)->ReadCheckpoints();
  if (!cps.ok()) return Fail(cps.status().message());
  auto r = audit::Verify(*all, *cps, o.key);
  std::printf("%s\n", r.message.c_str());
  return r.ok ? 0 : 1;
}

int AuditList(const Options& o, size_t limit) {
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto all = ReadWholeAudit(**db);
  if (!all.ok()) return Fail(all.status().message());
  size_t start = all->size() > limit ? all->size() - limit : 0;
  for (size_t i = start; i < all->size(); ++i) {
    const auto& e = (*all)[i];
    std::printf("%lld %s %s %s %s %s (%s) %s\n", static_cast<long long>(e.seq), FormatMicros(e.time_us).c_str(),
                e.recipient.c_str(), e.object_id.c_str(), e.version.c_str(), e.decision.c_str(), e.reason.c_str(),
                e.hash.substr(0, 16).c_str());
  }
  return 0;
}

// audit export --for PARTNER: its entries in full, the rest as digests, up to a fresh signed checkpoint.
int AuditExport(const Options& o) {
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto p = (*db)->GetPartner(o.as_partner); !p.ok()) return Fail(p.status().message());
  std::string err;
  auto key = audit::LoadOrCreateKey(store::NodeKeyPath(o.db), &err);
  if (!key) return Fail(err);
  if (auto cp = store::WriteCheckpoint(**db, *key); !cp.ok()) return Fail(cp.status().message());
  auto all = ReadWholeAudit(**db);
  if (!all.ok()) return Fail(all.status().message());
  auto cps = (*db)->ReadCheckpoints();
  if (!cps.ok()) return Fail(cps.status().message());
  auto lines = audit::ExportFor(*all, *cps, o.as_partner);
  std::string text = audit::ExportToJsonLines(lines, *cps);
  if (o.out.empty() || o.out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    FILE* f = std::fopen(o.out.c_str(), "w");
    if (!f) return Fail("cannot write " + o.out);
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok &= std::fclose(f) == 0;
    if (!ok) return Fail("cannot write " + o.out);
  }
  size_t own = std::count_if(lines.begin(), lines.end(), [](const audit::ExportLine& l) { return l.full; });
  std::fprintf(stderr, "%zu entries about %s, %zu as digests; verify with: tearline audit verify --file F --key %s\n",
               own, o.as_partner.c_str(), lines.size() - own, key->public_hex.c_str());
  return 0;
}

// node key: this node's identity and public key (exchanged out of band with partners).
int NodeKey(const Options& o) {
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  std::string err;
  auto key = audit::LoadOrCreateKey(store::NodeKeyPath(o.db), &err);
  if (!key) return Fail(err);
  auto id = (*db)->NodeIdentity();
  if (!id.ok()) return Fail(id.status().message());
  std::printf("%s %s\n", id->c_str(), key->public_hex.c_str());
  return 0;
}

int Correlations(const Options& o) {
  auto db = OpenDb(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  std::string from = o.collection.empty() ? "demo" : o.collection;
  auto found = correlate::Find(**db, from);
  if (!found.ok()) return Fail(found.status().message());
  for (const auto& c : *found) {
    std::string orgs;
    for (const auto& x : c.organisations) orgs += (orgs.empty() ? "" : ",") + x;
    std::printf("%-10s %s  organisations=%s  reports=%zu  %s..%s\n", c.kind.c_str(), c.shared_ref.c_str(), orgs.c_str(),
                c.reports.size(), c.first_seen.c_str(), c.last_seen.c_str());
  }
  std::string into = o.into.empty() ? "correlations" : o.into;
  auto stored = correlate::Record(**db, into, *found);
  if (!stored.ok()) return Fail(stored.status().message());
  std::fprintf(stderr, "%zu correlations; %zu new groupings stored in collection \"%s\"\n", found->size(), *stored,
               into.c_str());
  return 0;
}

}  // namespace

int Run(int argc, char** argv) {
  CLI::App app{"tearline: a federated STIX 2.1 / TAXII 2.1 threat-intelligence exchange node"};
  app.require_subcommand(1);
  Options o;

  auto* validate = app.add_subcommand("validate", "Validate STIX 2.1 files (bundle, object, envelope or JSON lines)");
  validate->add_option("FILE", o.files, "files to check ('-' for standard input)")->required();
  validate->add_option("--format", o.format, "auto (by content; .jsonl/.ndjson are JSON lines), json or jsonl")
      ->check(CLI::IsMember({"auto", "json", "jsonl"}));
  validate->add_flag("--warnings", o.warnings, "also list SHOULD-level warnings");

  auto* import = app.add_subcommand("import", "Validate and store STIX 2.1 files in a collection");
  import->add_option("--db", o.db, "SQLite database file (created if missing)")->required();
  import->add_option("--collection", o.collection, "collection name (created if missing)")->required();
  import->add_option("FILE", o.files, "files to import ('-' for standard input)")->required();
  import->add_option("--format", o.format, "auto, json or jsonl")->check(CLI::IsMember({"auto", "json", "jsonl"}));
  import->add_flag("--warnings", o.warnings, "also list SHOULD-level warnings");

  auto* exp = app.add_subcommand("export", "Write a collection as a STIX 2.1 bundle on standard output");
  exp->add_option("--db", o.db, "SQLite database file")->required();
  exp->add_option("--collection", o.collection, "collection name or TAXII id")->required();
  exp->add_option("--type", o.types, "only objects of this type (repeatable)");
  exp->add_option("--added-after", o.added_after, "only versions added after this RFC 3339 timestamp");
  exp->add_option("--as", o.as_partner, "show what this partner (identity id) would receive: same rules as TAXII");
  exp->add_option("--version", o.version, "all, first or last (default) version of each object")
      ->check(CLI::IsMember({"all", "first", "last"}));

  auto* stats = app.add_subcommand("stats", "Count stored objects by collection and type");
  stats->add_option("--db", o.db, "SQLite database file")->required();

  auto* pat = app.add_subcommand("pattern", "STIX 2.1 patterning: check syntax, evaluate against observed-data");
  pat->require_subcommand(1);
  auto* check = pat->add_subcommand("check", "Check a pattern's syntax: exit 0 valid, 1 invalid (with the position)");
  check->add_option("PATTERN", o.pattern, "the pattern, e.g. \"[ipv4-addr:value = '198.51.100.7']\"")->required();
  auto* eval = pat->add_subcommand(
      "eval", "Evaluate a pattern against observed-data: prints true/false; exit 0 match, 1 no match, 2 error");
  eval->add_option("--pattern", o.pattern, "the pattern");
  eval->add_option("FILE", o.files, "bundle or JSON array of observed-data and their SCOs ('-' for stdin)");
  eval->add_option("--cases", o.cases,
                   "JSON lines {\"pattern\": ..., \"observed_data\": [...]}: prints true, false or error: MESSAGE per line");

  std::string config_path;
  auto* serve = app.add_subcommand("serve", "Run the TAXII 2.1 server until SIGINT/SIGTERM");
  serve->add_option("--config", config_path, "tearline.toml")->required();
  auto* config = app.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  auto* config_check = config->add_subcommand("check", "Validate a config file: exit 0 ok, 1 invalid, 2 unreadable");
  config_check->add_option("FILE", config_path, "tearline.toml")->required();

  PrincipalOptions po;
  auto* principal = app.add_subcommand("principal", "Manage TAXII principals (secrets stored as Argon2id hashes)");
  principal->require_subcommand(1);
  auto* p_add = principal->add_subcommand("add", "Create or update a principal and its collection permissions");
  p_add->add_option("--db", po.db, "SQLite database file")->required();
  p_add->add_option("NAME", po.name, "principal name")->required();
  p_add->add_option("--read", po.read, "collections it may read (names or ids, '*' for all)")->delimiter(',');
  p_add->add_option("--write", po.write, "collections it may write")->delimiter(',');
  p_add->add_option("--identity", po.identity, "the person this principal is (identity id): TLP:RED objects naming it in their distribution reach it");
  p_add->add_flag("--password-stdin", po.password_stdin, "read a password (HTTP Basic) from standard input");
  auto* p_list = principal->add_subcommand("list", "List principals and permissions");
  p_list->add_option("--db", po.db, "SQLite database file")->required();
  auto* p_remove = principal->add_subcommand("remove", "Remove a principal and its tokens");
  p_remove->add_option("--db", po.db, "SQLite database file")->required();
  p_remove->add_option("NAME", po.name, "principal name")->required();
  auto* p_token = principal->add_subcommand("token", "Issue a bearer token for a principal (printed once)");
  p_token->add_option("--db", po.db, "SQLite database file")->required();
  p_token->add_option("NAME", po.name, "principal name")->required();

  auto* match = app.add_subcommand("match", "Match indicators against observed-data; writes STIX sightings as JSON lines");
  match->add_option("--indicators", o.indicators, "bundle or array holding indicators (pattern_type stix)");
  match->add_option("--db", o.db, "SQLite database (instead of --indicators)");
  match->add_option("--collection", o.collection, "collection holding the indicators (with --db)");
  match->add_option("--observations", o.observations, "observed-data and SCOs: a bundle/array file, or JSON lines ('-' = stdin, one batch per line)")->required();
  match->add_option("--identity", o.identity, "where_sighted_refs of the sightings (default: this node's identity)");
  match->add_option("--format", o.format, "auto, json or jsonl")->check(CLI::IsMember({"auto", "json", "jsonl"}));
  match->add_option("--window", o.window_seconds,
                    "seconds: multi-observation patterns combine observations of earlier lines this recent (default 86400)")
      ->check(CLI::Range(int64_t{0}, int64_t{10} * 365 * 86400));
  match->add_option("--max-kept", o.max_kept, "earlier observations kept for those patterns, at most (default 10000)")
      ->check(CLI::Range(size_t{0}, size_t{10000000}));

  auto* corr = app.add_subcommand("correlations",
                                  "Find observables and indicators reported by two or more organisations; store STIX groupings");
  corr->add_option("--db", o.db, "SQLite database")->required();
  corr->add_option("--collection", o.collection, "collection to examine (default: demo)");
  corr->add_option("--into", o.into, "collection for the groupings (default: correlations)");

  size_t audit_limit = 50;
  auto* aud = app.add_subcommand("audit", "The hash-chained log of every release");
  aud->require_subcommand(1);
  auto* av = aud->add_subcommand("verify",
                                 "Check the chain and its signed checkpoints: exit 0 intact, 1 broken (names the entry)");
  av->add_option("--db", o.db, "SQLite database");
  av->add_option("--key", o.key, "the node's public key (hex): checkpoints must be signed by it");
  av->add_option("--file", o.file, "verify an export (from `audit export --for`) instead of a database");
  auto* ae = aud->add_subcommand("export", "The entries about one partner, verifiable with the node's public key");
  ae->add_option("--db", o.db, "SQLite database")->required();
  ae->add_option("--for", o.as_partner, "partner identity id")->required();
  ae->add_option("--out", o.out, "file to write (default: standard output)");
  auto* node = app.add_subcommand("node", "This node");
  node->require_subcommand(1);
  auto* next = node->add_subcommand("extension", "Print the extension-definition of tearline's property-extension (docs/extension.md)");
  auto* nk = node->add_subcommand("key", "Print the node's identity and Ed25519 public key (hex)");
  nk->add_option("--db", o.db, "SQLite database")->required();
  auto* al = aud->add_subcommand("list", "Show the latest entries");
  al->add_option("--db", o.db, "SQLite database")->required();
  al->add_option("--limit", audit_limit, "how many (default 50)");

  PolicyOptions pol;
  auto* partner = app.add_subcommand("partner", "Partner organisations: channel state, principals, trust groups");
  partner->require_subcommand(1);
  auto* pa = partner->add_subcommand("add", "Create or update a partner");
  pa->add_option("--db", pol.db, "SQLite database")->required();
  pa->add_option("IDENTITY", pol.identity, "the partner's STIX identity id")->required();
  pa->add_option("--name", pol.name, "display name");
  pa->add_option("--channel", pol.channel, "open (default), restricted, suspended or closed");
  pa->add_option("--principal", pol.principals, "TAXII principals acting for it")->delimiter(',');
  pa->add_option("--group", pol.groups, "trust groups it belongs to (created with `group add`)")->delimiter(',');
  pa->add_option("--tier", pol.tier, "trust tier 0..1000 (default 0, or unchanged): originals of sanitized objects need tier >= min_full_tier");
  auto* pl = partner->add_subcommand("list", "List partners");
  pl->add_option("--db", pol.db, "SQLite database")->required();
  auto* ps = partner->add_subcommand("show", "Show a partner and the collections shared with it");
  ps->add_option("--db", pol.db, "SQLite database")->required();
  ps->add_option("IDENTITY", pol.identity, "identity id")->required();
  auto* pc = partner->add_subcommand("set-channel", "Change a channel: applies to the next request, on every path");
  pc->add_option("--db", pol.db, "SQLite database")->required();
  pc->add_option("IDENTITY", pol.identity, "identity id")->required();
  pc->add_option("STATE", pol.channel, "open, restricted, suspended or closed")->required();
  auto* pp = partner->add_subcommand("set-peer", "Federation: the partner's node (TAXII API root), token, push and pull collections");
  pp->add_option("--db", pol.db, "SQLite database")->required();
  pp->add_option("IDENTITY", pol.identity, "identity id")->required();
  pp->add_option("--url", pol.url, "the partner node's TAXII API root URL")->required();
  pp->add_option("--token", pol.token, "bearer token tearline uses at the partner's node");
  pp->add_option("--push-collection", pol.push_collection, "the partner's collection id to POST releases to");
  pp->add_option("--pull", pol.pull, "REMOTE_COLLECTION_ID=LOCAL_COLLECTION to poll (repeatable)");
  auto* pk = partner->add_subcommand("trust-key", "Trust the partner node's Ed25519 public key (exchanged out of band)");
  pk->add_option("--db", pol.db, "SQLite database")->required();
  pk->add_option("IDENTITY", pol.identity, "identity id")->required();
  pk->add_option("KEY", pol.key, "hex public key printed by `tearline node key` on the partner's node")->required();
  auto* pres = partner->add_subcommand("resend", "Queue again what was withheld (e.g. while the channel was closed) or failed");
  pres->add_option("--db", pol.db, "SQLite database")->required();
  pres->add_option("IDENTITY", pol.identity, "identity id")->required();
  pres->add_option("--since", pol.since, "RFC 3339 timestamp: deliveries queued since then")->required();
  auto* peer = app.add_subcommand("peer", "Partner nodes (federation)");
  peer->require_subcommand(1);
  auto* pst = peer->add_subcommand("status", "Per partner node: channel, last contact, outbox depth, lag, errors");
  pst->add_option("--db", pol.db, "SQLite database")->required();
  auto* pr = partner->add_subcommand("remove", "Remove a partner");
  pr->add_option("--db", pol.db, "SQLite database")->required();
  pr->add_option("IDENTITY", pol.identity, "identity id")->required();
  auto* group = app.add_subcommand("group", "Trust groups");
  group->require_subcommand(1);
  auto* gl = group->add_subcommand("list", "List trust groups and members");
  gl->add_option("--db", pol.db, "SQLite database")->required();
  auto* gadd = group->add_subcommand("add", "Create a trust group");
  gadd->add_option("--db", pol.db, "SQLite database")->required();
  gadd->add_option("GROUP", pol.name, "group name")->required();
  gadd->add_option("--description", pol.description, "what the group is");
  auto* grem = group->add_subcommand("remove", "Remove a trust group (refused while partners or collections use it)");
  grem->add_option("--db", pol.db, "SQLite database")->required();
  grem->add_option("GROUP", pol.name, "group name")->required();
  auto* gm = group->add_subcommand("member", "Add or remove a member");
  gm->require_subcommand(1);
  auto* gma = gm->add_subcommand("add", "Add a partner to a group");
  auto* gmr = gm->add_subcommand("remove", "Remove a partner from a group");
  for (auto* c : {gma, gmr}) {
    c->add_option("--db", pol.db, "SQLite database")->required();
    c->add_option("GROUP", pol.name, "group name")->required();
    c->add_option("IDENTITY", pol.identity, "partner identity id")->required();
  }
  auto* coll = app.add_subcommand("collection", "Collection audiences");
  coll->require_subcommand(1);
  auto* cs = coll->add_subcommand("share", "Share a collection with a partner or trust group");
  auto* cu = coll->add_subcommand("unshare", "Stop sharing a collection with a partner or trust group");
  for (auto* c : {cs, cu}) {
    c->add_option("--db", pol.db, "SQLite database")->required();
    c->add_option("COLLECTION", pol.name, "collection name")->required();
    c->add_option("--partner", pol.partner, "partner identity id");
    c->add_option("--group", pol.group, "trust group");
    c->add_option("--default-tlp", pol.default_tlp, "TLP of unmarked objects: clear, green, amber (default), amber+strict, red");
  }

  WarnOptions wo;
  auto* party = app.add_subcommand("party", "Parties that may be warned (duty to warn), with or without a channel");
  party->require_subcommand(1);
  auto* party_add = party->add_subcommand("add", "Register a party: identity, warning endpoint, key, what targets mean it");
  party_add->add_option("--db", wo.db, "SQLite database")->required();
  party_add->add_option("IDENTITY", wo.identity, "the party's STIX identity id")->required();
  party_add->add_option("--name", wo.name, "display name");
  party_add->add_option("--url", wo.url, "TAXII API root of the party's node")->required();
  party_add->add_option("--token", wo.token, "bearer token for the party's warning inbox");
  party_add->add_option("--collection", wo.collection, "collection id of the party's warning inbox")->required();
  party_add->add_option("--key", wo.key, "the party node's Ed25519 public key (hex)")->required();
  party_add->add_option("--match", wo.matches, "location:ID, country:CC, city:NAME, identity:ID or sector:NAME (repeatable)");
  auto* party_list = party->add_subcommand("list", "List parties");
  party_list->add_option("--db", wo.db, "SQLite database")->required();
  auto* warnc = app.add_subcommand("warn", "Duty to warn: drafts, decisions, delivery, public advisories");
  warnc->require_subcommand(1);
  auto* w_scan = warnc->add_subcommand("scan", "Run the warning rules over a collection (serve does this continuously)");
  w_scan->add_option("--db", wo.db, "SQLite database")->required();
  w_scan->add_option("--collection", wo.collection, "collection")->required();
  w_scan->add_option("--min-confidence", wo.min_confidence, "threshold 0..100 (default 50)");
  auto* w_list = warnc->add_subcommand("list", "Warnings and their state");
  w_list->add_option("--db", wo.db, "SQLite database")->required();
  auto* w_show = warnc->add_subcommand("show", "A warning: rule, text, the exact objects the party would receive");
  auto* w_status = warnc->add_subcommand("status", "A warning's history: draft, approvals, delivery, acknowledgement, publication");
  auto* w_approve = warnc->add_subcommand("approve", "Approve a draft (two approvers when the two-person rule is on)");
  auto* w_waive = warnc->add_subcommand("waive", "Decide not to warn (e.g. it would endanger sources and methods); reason required");
  auto* w_reject = warnc->add_subcommand("reject", "Reject a draft (not a credible threat); reason required");
  auto* w_publish = warnc->add_subcommand("publish", "Publish an approved warning: CAP 1.2, Atom feed, TLP:CLEAR STIX report");
  for (auto* c : {w_show, w_status, w_approve, w_waive, w_reject, w_publish}) {
    c->add_option("--db", wo.db, "SQLite database")->required();
    c->add_option("ID", wo.id, "warning id (report--...)")->required();
  }
  for (auto* c : {w_approve, w_waive, w_reject, w_publish}) c->add_option("--by", wo.by, "who decides")->required();
  for (auto* c : {w_approve, w_waive, w_reject}) c->add_option("--reason", wo.reason, "why (recorded)");
  w_approve->add_option("--instruction", wo.instruction, "approved advice to the public, for a later advisory");
  w_publish->add_option("--public-collection", wo.public_collection, "collection for the STIX form (default: public)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (validate->parsed()) return Validate(o);
  if (import->parsed()) return Import(o);
  if (exp->parsed()) return Export(o);
  if (stats->parsed()) return Stats(o);
  if (check->parsed()) return PatternCheck(o);
  if (serve->parsed()) return Serve(config_path);
  if (match->parsed()) return Match(o);
  if (corr->parsed()) return Correlations(o);
  if (av->parsed()) return AuditVerify(o);
  if (al->parsed()) return AuditList(o, audit_limit);
  if (ae->parsed()) return AuditExport(o);
  if (nk->parsed()) return NodeKey(o);
  if (next->parsed()) {
    std::printf("%s\n", policy::ExtensionDefinitionJson().c_str());
    return 0;
  }
  if (gadd->parsed()) return GroupAdd(pol);
  if (grem->parsed()) return GroupRemove(pol);
  if (pa->parsed()) return PartnerAdd(pol);
  if (pl->parsed()) return PartnerList(pol);
  if (ps->parsed()) return PartnerShow(pol);
  if (pc->parsed()) return PartnerSetChannel(pol);
  if (pr->parsed()) return PartnerRemove(pol);
  if (pp->parsed()) return PartnerSetPeer(pol);
  if (party_add->parsed()) return PartyAdd(wo);
  if (party_list->parsed()) return PartyList(wo);
  if (w_scan->parsed()) return WarnScan(wo);
  if (w_list->parsed()) return WarnList(wo);
  if (w_show->parsed()) return WarnShow(wo);
  if (w_status->parsed()) return WarnStatus(wo);
  if (w_approve->parsed()) return WarnDecide(wo, "approve");
  if (w_waive->parsed()) return WarnDecide(wo, "waive");
  if (w_reject->parsed()) return WarnDecide(wo, "reject");
  if (w_publish->parsed()) return WarnPublish(wo);
  if (pk->parsed()) return PartnerTrustKey(pol);
  if (pres->parsed()) return PartnerResend(pol);
  if (pst->parsed()) return PeerStatus(pol);
  if (gl->parsed()) return GroupList(pol);
  if (gma->parsed()) return GroupMember(pol, true);
  if (gmr->parsed()) return GroupMember(pol, false);
  if (cs->parsed()) return CollectionShare(pol, true);
  if (cu->parsed()) return CollectionShare(pol, false);
  if (config_check->parsed()) return ConfigCheck(config_path);
  if (p_add->parsed()) return PrincipalAdd(po);
  if (p_list->parsed()) return PrincipalList(po);
  if (p_remove->parsed()) return PrincipalRemove(po);
  if (p_token->parsed()) return PrincipalToken(po);
  if (eval->parsed()) return PatternEval(o);
  return 2;
}

}  // namespace tearline::cli
