// The one JSON dump: invalid UTF-8 is replaced, never thrown on, and nothing bypasses it.

#include "util/json_text.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace crashmail;

TEST_CASE("json_text replaces invalid UTF-8 instead of throwing", "[json]") {
    nlohmann::json value = {{"process", "\xff\xfe w\xc3\xb6rker \xc3("}};
    CHECK_THROWS(value.dump()); // what json_text exists for
    std::string text;
    REQUIRE_NOTHROW(text = json_text(value));
    CHECK(text == "{\"process\":\"\xef\xbf\xbd\xef\xbf\xbd w\xc3\xb6rker \xef\xbf\xbd(\"}");
    CHECK(json_text(value, 1).find("\n \"process\"") != std::string::npos);
}

TEST_CASE("no JSON dump under src/ bypasses json_text", "[json]") {
    const std::filesystem::path sources = CRASHMAIL_SOURCES;
    std::vector<std::string> offenders;
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(sources)) {
        const auto extension = entry.path().extension();
        if (!entry.is_regular_file() || (extension != ".cpp" && extension != ".hpp")) {
            continue;
        }
        ++files;
        if (entry.path().filename() == "json_text.cpp") {
            continue;
        }
        std::ifstream in(entry.path());
        std::string line;
        for (int number = 1; std::getline(in, line); ++number) {
            if (line.find(".dump(") != std::string::npos ||
                line.find("->dump(") != std::string::npos) {
                offenders.push_back(entry.path().string() + ":" + std::to_string(number));
            }
        }
    }
    CHECK(files > 50); // the scan found the sources
    INFO("call json_text() instead of dump() at these places");
    CHECK(offenders == std::vector<std::string>{});
}
