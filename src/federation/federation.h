// tearline federation (issue #6): nodes exchange releases over TAXII 2.1, signed.
//
// This is the public header of src/federation (docs/federation.md). Every object a node releases to a
// partner node travels with an Ed25519 signature by the releasing node over the
// object's RFC 8785 canonical form, in the TAXII envelope member
// "tearline_signatures" ({"<id>|<version>": [{"node","key","sig"}, ...]}), so the
// object itself is never changed; a relayed object keeps the signatures it came
// with and gains the relayer's. Standard TAXII clients ignore the member.
//
// An envelope of several objects is signed once: the signature is over the root of
// a Merkle tree (RFC 9162 §2.1 shape and inclusion proofs, SHA-256) whose leaves are
// the objects' canonical forms, and each object's entry carries its inclusion proof
// ("merkle": {"count", "index", "path"}). Each object is still verifiable on its own,
// now and when relayed (its proof travels and is stored with it): the leaf hash,
// the path and the signed root prove that this node released exactly this object.
// Ed25519 costs one signature per envelope instead of one per object.
//
// Push: objects are queued in the store's outbox in the transaction that stores
// them (Store::Put push_to); the Federator POSTs them, in order, through the
// Releaser (exactly what the partner may see, variants included, decided when
// sent: a channel closed meanwhile stops them), follows the status resource and
// retries with exponential backoff and jitter. Pull: the Federator polls the
// partner's collections with added_after/next, keeping the position in the store.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "common/status.h"
#include "policy/policy.h"
#include "store/store.h"

namespace tearline::federation {

//! The envelope member that carries signatures.
inline constexpr std::string_view kSignaturesMember = "tearline_signatures";

struct Signature {
  std::string node;  //!< identity of the signing node
  std::string key;   //!< its Ed25519 public key, hex
  std::string sig;   //!< hex signature over SignedMessage(object), or over BatchMessage(root, count)
  //! Batch form: the object is leaf `index` of `count` and `path` (hex SHA-256,
  //! leaf to root) is its RFC 9162 inclusion proof. count 0: a direct signature.
  uint64_t count = 0, index = 0;
  std::vector<std::string> path;
};

//! What is signed: a domain-separation prefix and the object's RFC 8785 canonical form.
std::string SignedMessage(std::string_view object_json);
//! What a batch signature signs: a domain-separation prefix, the leaf count and the root.
std::string BatchMessage(const std::array<unsigned char, 32>& root, uint64_t count);
//! The Merkle leaf hash of an object: SHA-256(0x00 || "tearline-object\n" || canonical form).
std::array<unsigned char, 32> LeafHash(std::string_view object_json);
Signature Sign(const audit::NodeKey& key, std::string_view node_identity, std::string_view object_json);
//! Signs several objects at once (one Ed25519 signature over their Merkle root); the
//! result holds each object's signature with its inclusion proof, in order.
std::vector<Signature> SignBatch(const audit::NodeKey& key, std::string_view node_identity,
                                 const std::vector<std::string_view>& object_jsons);
//! Checks a signature of either form (one Ed25519 verification).
bool Verify(std::string_view object_json, const Signature& s);
//! The message a batch signature must verify against for this object (its root
//! recomputed from the leaf hash and the path), or nullopt when the proof is malformed.
std::optional<std::string> BatchMessageFor(std::string_view object_json, const Signature& s);
//! The same from the object's LeafHash(), when the caller has it.
std::optional<std::string> BatchMessageFor(const std::array<unsigned char, 32>& leaf, const Signature& s);
std::string ToJson(const std::vector<Signature>& sigs);
std::vector<Signature> SignaturesFromJson(std::string_view json_array);
//! The key under which an object's signatures travel: "<id>|<modified or empty>".
std::string SignatureKey(std::string_view id, std::string_view modified);

//! Reads the signatures member of a TAXII envelope: key -> signatures. Empty when absent.
std::vector<std::pair<std::string, std::vector<Signature>>> EnvelopeSignatures(std::string_view envelope);

//! The partners (identities) whose node gets what is stored in `collection` pushed:
//! peers with a push collection whose partner record the collection is shared with.
Result<std::vector<std::string>> PushTargets(store::Store& store, std::string_view collection);

//! Checks, for an envelope received from partner `peer`, that every object carries a
//! valid signature by the peer's key. Returns, per object index, an error message
//! (empty: good) and fills `stored` with the signatures JSON to keep for each object.
std::vector<std::string> CheckSignatures(std::string_view envelope, const std::vector<stix::Object>& objects,
                                         const store::Peer& peer, std::vector<std::string>* stored);

//! A minimal HTTP client (libcurl) for TAXII calls to partner nodes.
struct HttpReply {
  long status = 0;                              //!< 0: transport error
  std::string body;
  std::map<std::string, std::string> headers;   //!< lower-case names
  std::string error;
};
HttpReply HttpCall(const std::string& method, const std::string& url, const std::string& token,
                   const std::string& body, int64_t timeout_ms);

//! One object to sign: its id and modified (the signature key), its JSON, and the
//! signatures it already carries (JSON array text, kept first), if any.
struct ToSign {
  std::string_view id, modified, json, carried;
};
//! The value of the `tearline_signatures` member: this node's signature of each object.
std::string SignaturesMember(const std::vector<ToSign>& objects, const audit::NodeKey& key, std::string_view node_identity);
//! A TAXII envelope {"objects": [...], "tearline_signatures": {...}} of `objects`.
std::string SignedEnvelope(const std::vector<ToSign>& objects, const audit::NodeKey& key, std::string_view node_identity);

struct Options {
  int64_t poll_interval_ms = 500;   //!< how often pending work and pull sources are checked
  int64_t retry_base_ms = 500;      //!< first retry delay; doubles per attempt (with jitter)
  int64_t retry_max_ms = 60000;
  size_t batch = 200;               //!< objects per POST / per pulled page
  int64_t timeout_ms = 15000;       //!< per HTTP request
};

//! When to try again after `attempts` failures: exponential from retry_base_ms, capped at
//! retry_max_ms, with jitter (half fixed, half random). Microseconds from now.
int64_t RetryDelayUs(int64_t attempts, const Options& options);

//! The push and pull workers of a node (one thread).
class Federator {
 public:
  Federator(store::Store& store, const policy::Releaser& releaser, audit::NodeKey key, Options options = {});
  ~Federator();
  void Start();
  void Stop();
  //! Wakes the worker (new objects were queued).
  void Wake();
  //! Extra work run on every pass of the worker (serve delivers approved warnings here).
  void set_extra(std::function<void()> f) { extra_ = std::move(f); }
  //! One push pass for one peer: sends what is due. Returns objects accounted for.
  Result<size_t> PushOnce(const store::Peer& peer);

  //! A push batch made ready to send: the due items after `after_seq`, decided by the
  //! Releaser, rendered and signed (items not released are already marked withheld).
  struct Prepared;
  Result<std::shared_ptr<Prepared>> Prepare(const store::Peer& peer, int64_t after_seq);
  //! POSTs a prepared batch, follows its status, audits and marks it. If the partner's
  //! record or the collection's audience changed since it was prepared, nothing is
  //! sent (the items stay pending and are decided again).
  Result<size_t> Send(const store::Peer& peer, Prepared& batch);
  //! One pull pass over one peer's pull sources. Returns objects stored.
  Result<size_t> PullOnce(const store::Peer& peer);

 private:
  void Loop();
  store::Store& store_;
  const policy::Releaser& releaser_;
  audit::NodeKey key_;
  Options opt_;
  std::string node_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, woken_ = false;
  std::function<void()> extra_;
  std::thread thread_;
};

}  // namespace tearline::federation
