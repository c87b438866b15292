// Format names and the dispatch from a format to its renderer.
#include "tables.hpp"

namespace kb::report {

std::optional<Format> parse_format(std::string_view name) {
  if (name == "terminal" || name == "text")
    return Format::terminal;
  if (name == "markdown" || name == "md")
    return Format::markdown;
  if (name == "html")
    return Format::html;
  if (name == "csv")
    return Format::csv;
  if (name == "json")
    return Format::json;
  return std::nullopt;
}

namespace {

const Renderer& renderer_for(Format f) {
  switch (f) {
  case Format::terminal:
    return terminal_renderer();
  case Format::markdown:
    return markdown_renderer();
  case Format::html:
    return html_renderer();
  case Format::csv:
    return csv_renderer();
  case Format::json:
    return json_renderer();
  }
  return terminal_renderer();
}

} // namespace

std::string render(const Report& r, Format f) {
  return renderer_for(f).report(r);
}

std::string render_compare(const CompareResult& r, Format f) {
  return renderer_for(f).compare(r);
}

} // namespace kb::report
