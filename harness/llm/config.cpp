// Model configuration: well-known model defaults and the models YAML loader.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "llm.hpp"

namespace kb::llm {

std::string_view provider_kind_name(ProviderKind k) {
  switch (k) {
  case ProviderKind::openai:
    return "openai";
  case ProviderKind::anthropic:
    return "anthropic";
  case ProviderKind::replay:
    return "replay";
  }
  return "unknown";
}

std::optional<ProviderKind> parse_provider_kind(std::string_view name) {
  if (name == "openai")
    return ProviderKind::openai;
  if (name == "anthropic")
    return ProviderKind::anthropic;
  if (name == "replay")
    return ProviderKind::replay;
  return std::nullopt;
}

namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

ModelConfig base(std::string_view name, ProviderKind kind, std::string url, std::string key_env) {
  ModelConfig m;
  m.name = std::string(name);
  m.model_id = std::string(name);
  m.provider = kind;
  m.base_url = std::move(url);
  m.api_key_env = std::move(key_env);
  m.source = "built-in";
  return m;
}

void set_prices(ModelConfig& m, double in, double out) {
  m.price_in_per_mtok = in;
  m.price_out_per_mtok = out;
}

// OpenAI reasoning models reject temperature and take max_completion_tokens.
void make_reasoning(ModelConfig& m) {
  m.max_tokens_field = "max_completion_tokens";
  m.send_temperature = false;
  m.max_output_tokens = 32768;
  m.read_timeout_s = 600.0;
}

// First matching prefix wins; prices are list prices in USD per million tokens (mid-2025) and
// belong in config/models.yaml when they change.
struct PriceRow {
  std::string_view prefix;
  double in, out;
};

void apply_price_table(ModelConfig& m, std::string_view id, std::initializer_list<PriceRow> rows) {
  for (const auto& r : rows) {
    if (starts_with(id, r.prefix)) {
      set_prices(m, r.in, r.out);
      return;
    }
  }
}

} // namespace

std::optional<ModelConfig> known_model_defaults(std::string_view name) {
  const std::string id = lower(name);
  if (id == "replay" || starts_with(id, "replay-") || starts_with(id, "replay:")) {
    ModelConfig m = base(name, ProviderKind::replay, "", "");
    m.replay_dir = "levels/examples";
    m.concurrency = 64;
    m.max_retries = 0;
    return m;
  }
  if (starts_with(id, "gpt-") || starts_with(id, "chatgpt-")) {
    ModelConfig m = base(name, ProviderKind::openai, "https://api.openai.com/v1", "OPENAI_API_KEY");
    if (starts_with(id, "gpt-5"))
      make_reasoning(m);
    apply_price_table(m, id,
                      {{"gpt-5-nano", 0.05, 0.40},
                       {"gpt-5-mini", 0.25, 2.00},
                       {"gpt-5", 1.25, 10.00},
                       {"gpt-4.1-nano", 0.10, 0.40},
                       {"gpt-4.1-mini", 0.40, 1.60},
                       {"gpt-4.1", 2.00, 8.00},
                       {"gpt-4o-mini", 0.15, 0.60},
                       {"gpt-4o", 2.50, 10.00}});
    return m;
  }
  if (starts_with(id, "o1") || starts_with(id, "o3") || starts_with(id, "o4")) {
    ModelConfig m = base(name, ProviderKind::openai, "https://api.openai.com/v1", "OPENAI_API_KEY");
    make_reasoning(m);
    apply_price_table(m, id,
                      {{"o4-mini", 1.10, 4.40},
                       {"o3-mini", 1.10, 4.40},
                       {"o3-pro", 20.00, 80.00},
                       {"o3", 2.00, 8.00},
                       {"o1-mini", 1.10, 4.40},
                       {"o1", 15.00, 60.00}});
    return m;
  }
  if (starts_with(id, "claude-")) {
    ModelConfig m =
        base(name, ProviderKind::anthropic, "https://api.anthropic.com", "ANTHROPIC_API_KEY");
    m.max_output_tokens = 16384;
    apply_price_table(m, id,
                      {{"claude-opus-4", 15.00, 75.00},
                       {"claude-3-opus", 15.00, 75.00},
                       {"claude-sonnet-4", 3.00, 15.00},
                       {"claude-3-7-sonnet", 3.00, 15.00},
                       {"claude-3-5-sonnet", 3.00, 15.00},
                       {"claude-3-5-haiku", 0.80, 4.00},
                       {"claude-haiku-4", 1.00, 5.00}});
    return m;
  }
  if (starts_with(id, "gemini-")) {
    ModelConfig m =
        base(name, ProviderKind::openai, "https://generativelanguage.googleapis.com/v1beta/openai",
             "GEMINI_API_KEY");
    m.max_output_tokens = 32768;
    m.read_timeout_s = 600.0;
    apply_price_table(m, id,
                      {{"gemini-2.5-pro", 1.25, 10.00},
                       {"gemini-2.5-flash-lite", 0.10, 0.40},
                       {"gemini-2.5-flash", 0.30, 2.50}});
    return m;
  }
  if (starts_with(id, "deepseek-")) {
    ModelConfig m =
        base(name, ProviderKind::openai, "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY");
    if (id == "deepseek-reasoner") {
      m.send_temperature = false;
      m.max_output_tokens = 32768;
      m.read_timeout_s = 600.0;
    }
    apply_price_table(m, id, {{"deepseek-reasoner", 0.55, 2.19}, {"deepseek-chat", 0.27, 1.10}});
    return m;
  }
  if (starts_with(id, "kevin") || id == "cognition-ai/kevin-32b") {
    // Served locally by vLLM or SGLang with their OpenAI-compatible API; a QwQ-32B derivative, so
    // it thinks at length at the sampling temperature its base model recommends.
    ModelConfig m = base(name, ProviderKind::openai, "http://127.0.0.1:8000/v1", "");
    m.model_id = "cognition-ai/Kevin-32B";
    m.temperature = 0.6;
    m.max_output_tokens = 16384;
    m.concurrency = 32;
    m.read_timeout_s = 600.0;
    return m;
  }
  if (starts_with(id, "llama.cpp") || starts_with(id, "llamacpp") || starts_with(id, "local")) {
    // llama.cpp's llama-server listens on 8080 and serves whatever model it loaded.
    ModelConfig m = base(name, ProviderKind::openai, "http://127.0.0.1:8080/v1", "");
    m.concurrency = 4;
    m.read_timeout_s = 600.0;
    return m;
  }
  return std::nullopt;
}

double cost_usd(const ModelConfig& m, int64_t tokens_in, int64_t tokens_out) {
  return (static_cast<double>(tokens_in) * m.price_in_per_mtok +
          static_cast<double>(tokens_out) * m.price_out_per_mtok) /
         1e6;
}

namespace {

struct Loader {
  std::string origin;

  int line_of(const YAML::Node& n) const { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& field,
                         const std::string& msg) const {
    throw InputError(origin, line_of(n), field, msg);
  }

  // Text from the file: refused unless it is UTF-8 (it travels in JSON requests and the store).
  std::string text(const YAML::Node& n, const std::string& field) const {
    if (std::string why = utf8_problem(n.Scalar()); !why.empty())
      fail(n, field, why);
    return n.Scalar();
  }

  // The key of a mapping entry as text.
  std::string key_of(const YAML::Node& k, const std::string& field) const {
    if (!k.IsScalar())
      fail(k, field, "keys must be plain names");
    return text(k, field);
  }

  template <class T> T scalar(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar())
      fail(n, field, "expected a scalar value");
    if constexpr (std::is_same_v<T, std::string>)
      return text(n, field);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      if constexpr (std::is_same_v<T, bool>)
        fail(n, field, fmt::format("expected true or false, got '{}'", n.Scalar()));
      else if constexpr (std::is_integral_v<T>)
        fail(n, field, fmt::format("expected an integer, got '{}'", n.Scalar()));
      else if constexpr (std::is_floating_point_v<T>)
        fail(n, field, fmt::format("expected a number, got '{}'", n.Scalar()));
      else
        fail(n, field, fmt::format("cannot read '{}'", n.Scalar()));
    }
  }

  double number(const YAML::Node& n, const std::string& field, double lo, double hi) const {
    const double v = scalar<double>(n, field);
    if (!std::isfinite(v) || v < lo || v > hi)
      fail(n, field, fmt::format("{} is out of range [{}, {}]", n.Scalar(), lo, hi));
    return v;
  }

  int integer(const YAML::Node& n, const std::string& field, int lo, int hi) const {
    const int v = scalar<int>(n, field);
    if (v < lo || v > hi)
      fail(n, field, fmt::format("{} is out of range [{}, {}]", v, lo, hi));
    return v;
  }

  nlohmann::json to_json(const YAML::Node& n, const std::string& field) const {
    switch (n.Type()) {
    case YAML::NodeType::Map: {
      auto j = nlohmann::json::object();
      for (const auto& kv : n) {
        const std::string key = key_of(kv.first, field);
        j[key] = to_json(kv.second, field + "." + key);
      }
      return j;
    }
    case YAML::NodeType::Sequence: {
      auto j = nlohmann::json::array();
      for (const auto& e : n)
        j.push_back(to_json(e, field + "[" + std::to_string(j.size()) + "]"));
      return j;
    }
    case YAML::NodeType::Scalar: {
      // Plain scalars keep YAML's typing: numbers and booleans become JSON numbers/booleans.
      const std::string s = text(n, field);
      if (n.Tag() == "!")
        return s;
      bool b;
      if (YAML::convert<bool>::decode(n, b) && s != "y" && s != "n" && s != "Y" && s != "N")
        return b;
      long long i;
      if (YAML::convert<long long>::decode(n, i))
        return i;
      double d;
      if (YAML::convert<double>::decode(n, d))
        return d;
      if (s == "null" || s == "~")
        return nullptr;
      return s;
    }
    default:
      return nullptr;
    }
  }

  // Applies the fields of a mapping to m; `prefix` qualifies field names in messages.
  void apply(const YAML::Node& map, ModelConfig& m, const std::string& prefix) const {
    if (!map.IsMap())
      fail(map, prefix.empty() ? "model" : prefix, "expected a mapping of fields");
    for (const auto& kv : map) {
      const std::string key = key_of(kv.first, prefix.empty() ? "(key)" : prefix + ".(key)");
      const std::string field = prefix.empty() ? key : prefix + "." + key;
      const YAML::Node& v = kv.second;
      if (key == "provider") {
        auto k = parse_provider_kind(scalar<std::string>(v, field));
        if (!k)
          fail(v, field,
               fmt::format("unknown provider '{}' (openai, anthropic, replay)", v.Scalar()));
        m.provider = *k;
      } else if (key == "base_url") {
        m.base_url = scalar<std::string>(v, field);
        if (!m.base_url.empty() && !starts_with(m.base_url, "http://") &&
            !starts_with(m.base_url, "https://"))
          fail(v, field, "must start with http:// or https://");
        while (!m.base_url.empty() && m.base_url.back() == '/')
          m.base_url.pop_back();
      } else if (key == "model") {
        m.model_id = scalar<std::string>(v, field);
      } else if (key == "api_key_env") {
        m.api_key_env = v.IsNull() ? "" : scalar<std::string>(v, field);
        for (char c : m.api_key_env)
          if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
            fail(v, field,
                 "must name an environment variable (letters, digits, '_'), not hold a key");
      } else if (key == "temperature") {
        m.temperature = number(v, field, 0.0, 2.0);
      } else if (key == "max_output_tokens") {
        m.max_output_tokens = integer(v, field, 1, 1 << 22);
      } else if (key == "extra_body") {
        if (!v.IsMap())
          fail(v, field, "expected a mapping of request body fields");
        m.extra_body = to_json(v, field);
      } else if (key == "max_tokens_field") {
        m.max_tokens_field = scalar<std::string>(v, field);
        if (m.max_tokens_field != "max_tokens" && m.max_tokens_field != "max_completion_tokens")
          fail(v, field, "expected max_tokens or max_completion_tokens");
      } else if (key == "send_temperature") {
        m.send_temperature = scalar<bool>(v, field);
      } else if (key == "anthropic_version") {
        m.anthropic_version = scalar<std::string>(v, field);
      } else if (key == "price_in") {
        m.price_in_per_mtok = number(v, field, 0.0, 1e6);
      } else if (key == "price_out") {
        m.price_out_per_mtok = number(v, field, 0.0, 1e6);
      } else if (key == "requests_per_minute") {
        m.requests_per_minute = number(v, field, 0.0, 1e9);
      } else if (key == "tokens_per_minute") {
        m.tokens_per_minute = number(v, field, 0.0, 1e12);
      } else if (key == "concurrency") {
        m.concurrency = integer(v, field, 1, 64);
      } else if (key == "connect_timeout_s") {
        m.connect_timeout_s = number(v, field, 0.001, 3600.0);
      } else if (key == "read_timeout_s") {
        m.read_timeout_s = number(v, field, 1.0, 86400.0);
      } else if (key == "total_timeout_s") {
        m.total_timeout_s = number(v, field, 0.001, 86400.0);
      } else if (key == "max_retries") {
        m.max_retries = integer(v, field, 0, 100);
      } else if (key == "retry_base_delay_s") {
        m.retry_base_delay_s = number(v, field, 0.0, 3600.0);
      } else if (key == "retry_max_delay_s") {
        m.retry_max_delay_s = number(v, field, 0.0, 3600.0);
      } else if (key == "max_retry_after_s") {
        m.max_retry_after_s = number(v, field, 0.0, 86400.0);
      } else if (key == "replay_dir") {
        m.replay_dir = scalar<std::string>(v, field);
      } else if (key == "max_answer_bytes") {
        m.max_answer_bytes = integer(v, field, 1024, 64 << 20);
      } else {
        fail(kv.first, field, "unknown field");
      }
    }
  }

  std::vector<ModelConfig> load(const YAML::Node& root) const {
    if (!root.IsMap())
      throw InputError(origin, line_of(root), "models",
                       "expected a mapping with a 'models' section");
    for (const auto& kv : root) {
      const auto key = key_of(kv.first, "(key)");
      if (key != "models" && key != "defaults")
        fail(kv.first, key, "unknown section (expected 'models' or 'defaults')");
    }
    const YAML::Node defaults = root["defaults"];
    const YAML::Node models = root["models"];
    if (!models)
      throw InputError(origin, 1, "models", "missing 'models' section");
    if (!models.IsMap())
      fail(models, "models", "expected a mapping from model name to its fields");
    std::vector<ModelConfig> out;
    for (const auto& kv : models) {
      const std::string name = key_of(kv.first, "models.(key)");
      const YAML::Node& fields = kv.second;
      const int line = line_of(kv.first);
      auto known = known_model_defaults(name);
      // A model id naming a known family ("model: claude-sonnet-4-0" under any name) also gives
      // defaults.
      if (!known && fields.IsMap() && fields["model"] && fields["model"].IsScalar())
        if (auto by_id = known_model_defaults(fields["model"].Scalar())) {
          known = by_id;
          known->name = name;
        }
      ModelConfig m = known.value_or(ModelConfig{});
      m.name = name;
      if (defaults) {
        if (!defaults.IsMap())
          fail(defaults, "defaults", "expected a mapping of fields");
        apply(defaults, m, "defaults");
      }
      if (!fields.IsNull())
        apply(fields, m, "models." + name);
      m.source = fmt::format("{}:{}", origin, line);
      const std::string field = "models." + name;
      if (!known) {
        if (!fields.IsMap() || !fields["provider"])
          throw InputError(origin, line, field + ".provider",
                           "required for a model that is not a well-known one");
        if (m.provider != ProviderKind::replay && !fields["base_url"])
          throw InputError(origin, line, field + ".base_url",
                           "required for a model that is not a well-known one");
        if (m.provider != ProviderKind::replay && !fields["model"])
          throw InputError(origin, line, field + ".model",
                           "required for a model that is not a well-known one");
      }
      if (m.provider != ProviderKind::replay && m.base_url.empty())
        throw InputError(origin, line, field + ".base_url", "empty");
      if (m.provider == ProviderKind::replay && m.replay_dir.empty())
        m.replay_dir = "levels/examples";
      if (m.retry_max_delay_s < m.retry_base_delay_s)
        throw InputError(origin, line, field + ".retry_max_delay_s",
                         "smaller than retry_base_delay_s");
      for (const auto& other : out)
        if (other.name == name)
          throw InputError(origin, line, field, "defined twice");
      out.push_back(std::move(m));
    }
    return out;
  }
};

} // namespace

std::vector<ModelConfig> parse_models(std::string_view yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::DeepRecursion& e) {
    throw InputError(origin, e.mark.line + 1, "yaml",
                     fmt::format("nested more than {} levels deep", e.depth()));
  } catch (const YAML::Exception& e) {
    throw InputError(origin, e.mark.line + 1, "yaml", e.msg);
  }
  try {
    return Loader{origin}.load(root);
  } catch (const YAML::Exception& e) {
    // Conversions the checks did not anticipate still name the place.
    throw InputError(origin, e.mark.line + 1, "yaml", e.msg);
  }
}

std::vector<ModelConfig> load_models(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(path, 0, "file", "cannot open the models file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_models(ss.str(), path);
}

const ModelConfig& find_model(const std::vector<ModelConfig>& models, std::string_view name) {
  for (const auto& m : models)
    if (m.name == name)
      return m;
  std::string known;
  for (const auto& m : models)
    known += (known.empty() ? "" : ", ") + m.name;
  throw Error(
      fmt::format("unknown model '{}' (configured: {})", name, known.empty() ? "none" : known));
}

} // namespace kb::llm
