#include "hf_pre_tokenizer.h"

#include <concepts>
#include <optional>
#include <type_traits>
#include <utility>

#include "hf_byte_level.h"
#include "hf_regex.h"
#include "hf_spec_fields.h"
#include "hf_unicode.h"

namespace bpt::hf {
namespace {

// Where a step hands each piece it makes: to the next step of a Sequence, or to the caller's
// vector. A non-owning callable, so that passing one per piece allocates nothing; a piece's text
// is valid only during the call (it may live in the step's scratch buffer).
class Emit {
 public:
  template <typename F>
    requires(!std::same_as<std::remove_cvref_t<F>, Emit>)
  Emit(F&& f)  // NOLINT: implicit, to pass lambdas
      : object_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, std::string_view piece, bool at_origin) {
          (*static_cast<std::remove_reference_t<F>*>(o))(piece, at_origin);
        }) {}
  void operator()(std::string_view piece, bool at_origin) const { call_(object_, piece, at_origin); }

 private:
  void* object_;
  void (*call_)(void*, std::string_view, bool);
};

// Each pre-tokenizer is a step that cuts one piece into pieces. at_origin: the piece begins at
// offset 0 of the caller's input (HF tests the piece's original offset, which is 0 only there).
class Step : public PreTokenizer {
 public:
  virtual void Run(std::string_view text, bool at_origin, Emit emit) const = 0;

  void Split(std::string_view text, bool at_text_start, std::vector<std::string>& pieces) const final {
    Run(text, at_text_start, [&](std::string_view piece, bool) { pieces.emplace_back(piece); });
  }
};

using StepPtr = std::unique_ptr<Step>;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// HF's NormalizedString::split: the text is covered by segments, each a match of the pattern or
// the text between matches (empty matches included, as HF lists them); `behavior` decides what
// becomes of the matches. Fed in order, it emits as soon as a piece can no longer grow, with the
// same result as HF's folds over the whole list. Empty pieces are dropped, as HF drops them.
class SegmentSplitter {
 public:
  SegmentSplitter(std::string_view text, bool at_origin, Behavior behavior, Emit emit)
      : text_(text), at_origin_(at_origin), behavior_(behavior), emit_(emit) {}

  void Add(size_t start, size_t end, bool is_match) {
    switch (behavior_) {
      case Behavior::kIsolated:
        Out(start, end);
        break;
      case Behavior::kRemoved:
        if (!is_match) Out(start, end);
        break;
      case Behavior::kContiguous:
        if (pending_ && is_match == previous_match_) {
          pending_->second = end;
        } else {
          Flush();
          pending_.emplace(start, end);
        }
        break;
      case Behavior::kMergedWithPrevious:
        if (pending_ && is_match && !previous_match_) {
          pending_->second = end;
        } else {
          Flush();
          pending_.emplace(start, end);
        }
        break;
      case Behavior::kMergedWithNext:
        // A match joins the piece after it unless that one is a match too.
        if (pending_ && !is_match) {
          const size_t merged_start = pending_->first;
          pending_.reset();
          Out(merged_start, end);
        } else {
          Flush();
          if (is_match) {
            pending_.emplace(start, end);
          } else {
            Out(start, end);
          }
        }
        break;
    }
    previous_match_ = is_match;
  }

  void Finish() { Flush(); }

 private:
  void Flush() {
    if (!pending_) return;
    const auto [start, end] = *pending_;
    pending_.reset();
    Out(start, end);
  }
  void Out(size_t start, size_t end) const {
    if (end > start) emit_(text_.substr(start, end - start), at_origin_ && start == 0);
  }

  std::string_view text_;
  bool at_origin_;
  Behavior behavior_;
  Emit emit_;
  std::optional<std::pair<size_t, size_t>> pending_;
  bool previous_match_ = false;
};

// HF's Pattern::find_matches for a regex: matches and the stretches between them.
void SplitByRegex(const Regex& regex, bool invert, std::string_view text, SegmentSplitter& splitter) {
  if (text.empty()) return;  // HF finds no match there, not even an empty one
  size_t previous = 0;
  regex.ForEachMatch(text, [&](size_t start, size_t end) {
    if (start != previous) splitter.Add(previous, start, invert);
    splitter.Add(start, end, !invert);
    previous = end;
  });
  if (previous != text.size()) splitter.Add(previous, text.size(), invert);
  splitter.Finish();
}

// HF's find_matches for a character test: each matching character alone, the runs between.
template <typename IsMatch>
void SplitByChar(IsMatch is_match, std::string_view text, SegmentSplitter& splitter) {
  size_t run_start = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    if (is_match(NextCodePoint(text, i))) {
      if (run_start < start) splitter.Add(run_start, start, false);
      splitter.Add(start, i, true);
      run_start = i;
    }
  }
  if (run_start < text.size()) splitter.Add(run_start, text.size(), false);
  splitter.Finish();
}

class SplitStep final : public Step {
 public:
  SplitStep(Regex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void Run(std::string_view text, bool at_origin, Emit emit) const override {
    SegmentSplitter splitter(text, at_origin, behavior_, emit);
    SplitByRegex(regex_, invert_, text, splitter);
  }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

template <typename IsMatch>
class CharSplitStep final : public Step {
 public:
  CharSplitStep(IsMatch is_match, Behavior behavior) : is_match_(is_match), behavior_(behavior) {}
  void Run(std::string_view text, bool at_origin, Emit emit) const override {
    SegmentSplitter splitter(text, at_origin, behavior_, emit);
    SplitByChar(is_match_, text, splitter);
  }

 private:
  IsMatch is_match_;
  Behavior behavior_;
};

template <typename IsMatch>
StepPtr MakeCharSplit(IsMatch is_match, Behavior behavior) {
  return std::make_unique<CharSplitStep<IsMatch>>(is_match, behavior);
}

// GPT-2's pattern (HF's ByteLevel regex), compiled once.
const Regex& Gpt2Regex() {
  static const Regex regex =
      std::move(Regex::Compile(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                               "the GPT-2 pattern"))
          .value();
  return regex;
}

class ByteLevelStep final : public Step {
 public:
  ByteLevelStep(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void Run(std::string_view text, bool at_origin, Emit emit) const override {
    if (text.empty()) return;
    // HF adds the space to every piece that reaches it without one, whatever at_origin.
    std::string prefixed;
    if (add_prefix_space_ && text.front() != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed += ' ';
      prefixed += text;
      text = prefixed;
    }
    std::string mapped;
    auto map_and_emit = [&](std::string_view piece, bool piece_at_origin) {
      mapped.clear();
      AppendByteLevelChars(piece, mapped);
      emit(mapped, piece_at_origin);
    };
    if (!use_regex_) {
      map_and_emit(text, at_origin);
      return;
    }
    SegmentSplitter splitter(text, at_origin, Behavior::kIsolated, map_and_emit);
    SplitByRegex(Gpt2Regex(), false, text, splitter);
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspaceStep final : public Step {
 public:
  MetaspaceStep(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Run(std::string_view text, bool at_origin, Emit emit) const override {
    if (text.empty()) return;
    std::string replaced;
    replaced.reserve(text.size() + replacement_.size() * 4);
    const bool starts_with_replacement = text.front() == ' ' || text.starts_with(replacement_);
    if ((scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && at_origin)) &&
        !starts_with_replacement) {
      replaced += replacement_;
    }
    for (const char c : text) {
      if (c == ' ') {
        replaced += replacement_;
      } else {
        replaced += c;
      }
    }
    if (!split_) {
      emit(replaced, at_origin);
      return;
    }
    SegmentSplitter splitter(replaced, at_origin, Behavior::kMergedWithNext, emit);
    const std::string_view view = replaced;
    size_t run_start = 0;
    for (size_t i = 0; i < view.size();) {
      if (view.compare(i, replacement_.size(), replacement_) == 0) {
        if (run_start < i) splitter.Add(run_start, i, false);
        splitter.Add(i, i + replacement_.size(), true);
        i += replacement_.size();
        run_start = i;
      } else {
        size_t next = i;
        NextCodePoint(view, next);
        i = next;
      }
    }
    if (run_start < view.size()) splitter.Add(run_start, view.size(), false);
    splitter.Finish();
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequenceStep final : public Step {
 public:
  explicit SequenceStep(std::vector<StepPtr> steps) : steps_(std::move(steps)) {}
  void Run(std::string_view text, bool at_origin, Emit emit) const override { RunFrom(0, text, at_origin, emit); }

 private:
  void RunFrom(size_t k, std::string_view text, bool at_origin, const Emit& emit) const {
    if (k == steps_.size()) {
      emit(text, at_origin);
      return;
    }
    steps_[k]->Run(text, at_origin,
                   [&](std::string_view piece, bool piece_at_origin) { RunFrom(k + 1, piece, piece_at_origin, emit); });
  }

  std::vector<StepPtr> steps_;
};

StatusOr<Behavior> ParseBehavior(const nlohmann::json& spec, const std::string& where,
                                 std::optional<std::string> fallback = std::nullopt) {
  BPT_ASSIGN_OR_RETURN(const std::string name, StringField(spec, "behavior", where, std::move(fallback)));
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return InvalidArgument(FieldPath(where, "behavior") + ": '" + name +
                         "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

StatusOr<StepPtr> ParseStep(const nlohmann::json& spec, const std::string& where, int depth);

// `depth`: the Sequences enclosing this one.
StatusOr<StepPtr> ParseSequence(const nlohmann::json& spec, const std::string& where, int depth) {
  BPT_ASSIGN_OR_RETURN(const nlohmann::json* list, RequiredField(spec, "pretokenizers", where));
  const std::string list_where = FieldPath(where, "pretokenizers");
  if (!list->is_array()) return InvalidArgument(list_where + ": expected a list, got " + list->dump());
  std::vector<StepPtr> steps;
  for (size_t i = 0; i < list->size(); ++i) {
    BPT_ASSIGN_OR_RETURN(StepPtr step, ParseStep((*list)[i], list_where + "[" + std::to_string(i) + "]", depth + 1));
    steps.push_back(std::move(step));
  }
  return StepPtr(std::make_unique<SequenceStep>(std::move(steps)));
}

StatusOr<StepPtr> ParseMetaspace(const nlohmann::json& spec, const std::string& where) {
  BPT_ASSIGN_OR_RETURN(std::string replacement, StringField(spec, "replacement", where));
  size_t end = 0;
  if (!replacement.empty()) NextCodePoint(replacement, end);
  if (replacement.empty() || end != replacement.size()) {
    return InvalidArgument(FieldPath(where, "replacement") + ": expected one character, got '" + replacement + "'");
  }
  BPT_ASSIGN_OR_RETURN(const std::string scheme_name, StringField(spec, "prepend_scheme", where, "always"));
  PrependScheme scheme;
  if (scheme_name == "always") {
    scheme = PrependScheme::kAlways;
  } else if (scheme_name == "first") {
    scheme = PrependScheme::kFirst;
  } else if (scheme_name == "never") {
    scheme = PrependScheme::kNever;
  } else {
    return InvalidArgument(FieldPath(where, "prepend_scheme") + ": '" + scheme_name +
                           "' is not one of always, first, never");
  }
  // The field of tokenizers < 0.14: false means never, and HF refuses it beside another scheme.
  if (const auto it = spec.find("add_prefix_space"); it != spec.end() && !it->is_null()) {
    BPT_ASSIGN_OR_RETURN(const bool add_prefix_space, BoolField(spec, "add_prefix_space", where));
    if (!add_prefix_space && scheme != PrependScheme::kNever) {
      return InvalidArgument(FieldPath(where, "add_prefix_space") + ": false does not match prepend_scheme '" +
                             scheme_name + "'");
    }
  }
  bool split = true;
  if (const auto it = spec.find("split"); it != spec.end() && !it->is_null()) {
    BPT_ASSIGN_OR_RETURN(split, BoolField(spec, "split", where));
  }
  return StepPtr(std::make_unique<MetaspaceStep>(std::move(replacement), scheme, split));
}

StatusOr<StepPtr> ParseStep(const nlohmann::json& spec, const std::string& where, int depth) {
  BPT_RETURN_IF_ERROR(CheckSequenceDepth(depth, where));
  BPT_ASSIGN_OR_RETURN(const std::string type, ComponentType(spec, where));
  if (type == "Sequence") return ParseSequence(spec, where, depth);
  if (type == "Metaspace") return ParseMetaspace(spec, where);
  if (type == "ByteLevel") {
    BPT_ASSIGN_OR_RETURN(const bool add_prefix_space, BoolField(spec, "add_prefix_space", where));
    // trim_offsets moves offsets only; the pieces are the same either way.
    BPT_RETURN_IF_ERROR(BoolField(spec, "trim_offsets", where).status());
    BPT_ASSIGN_OR_RETURN(const bool use_regex, BoolField(spec, "use_regex", where, true));
    return StepPtr(std::make_unique<ByteLevelStep>(add_prefix_space, use_regex));
  }
  if (type == "Split") {
    BPT_ASSIGN_OR_RETURN(const nlohmann::json* pattern_spec, RequiredField(spec, "pattern", where));
    BPT_ASSIGN_OR_RETURN(Regex regex, ParsePattern(*pattern_spec, FieldPath(where, "pattern")));
    BPT_ASSIGN_OR_RETURN(const Behavior behavior, ParseBehavior(spec, where));
    BPT_ASSIGN_OR_RETURN(const bool invert, BoolField(spec, "invert", where));
    return StepPtr(std::make_unique<SplitStep>(std::move(regex), behavior, invert));
  }
  if (type == "Digits") {
    BPT_ASSIGN_OR_RETURN(const bool individual, BoolField(spec, "individual_digits", where));
    return MakeCharSplit(IsNumeric, individual ? Behavior::kIsolated : Behavior::kContiguous);
  }
  if (type == "Punctuation") {
    BPT_ASSIGN_OR_RETURN(const Behavior behavior, ParseBehavior(spec, where, "Isolated"));
    return MakeCharSplit(IsPunctuation, behavior);
  }
  if (type == "WhitespaceSplit") return MakeCharSplit(IsWhiteSpace, Behavior::kRemoved);
  if (type == "Whitespace") {
    // HF's \w+|[^\w\s]+ in Rust's regex, whose \w is Unicode's word class (UTS #18).
    static constexpr std::string_view kWord = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
    const std::string pattern = "[" + std::string(kWord) + "]+|[^" + std::string(kWord) + "\\p{White_Space}]+";
    BPT_ASSIGN_OR_RETURN(Regex regex, Regex::Compile(pattern, where));
    return StepPtr(std::make_unique<SplitStep>(std::move(regex), Behavior::kRemoved, true));
  }
  if (type == "BertPreTokenizer") {
    std::vector<StepPtr> steps;
    steps.push_back(MakeCharSplit(IsWhiteSpace, Behavior::kRemoved));
    steps.push_back(MakeCharSplit(IsPunctuation, Behavior::kIsolated));
    return StepPtr(std::make_unique<SequenceStep>(std::move(steps)));
  }
  return InvalidArgument(FieldPath(where, "type") + ": '" + type + "' is not a supported pre-tokenizer");
}

}  // namespace

StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return std::unique_ptr<PreTokenizer>();
  BPT_ASSIGN_OR_RETURN(StepPtr step, ParseStep(spec, where, 0));
  return std::unique_ptr<PreTokenizer>(std::move(step));
}

}  // namespace bpt::hf
