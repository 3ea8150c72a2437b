// A program that makes a sanitizer report on request, built like the code
// under test: the tests of support/sanitizer_reports.hpp run it as a child to
// check that a child's report fails the test that started it.
//   sanitizer_probe leak        leaks 4 KiB (LeakSanitizer, at exit)
//   sanitizer_probe overflow    reads one byte past a heap block (ASan)
//   sanitizer_probe clean       exits 0 with nothing to report
#include <cstdio>
#include <cstring>

namespace {

volatile char* kept = nullptr;

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: sanitizer_probe leak|overflow|clean\n");
        return 2;
    }
    if (std::strcmp(argv[1], "leak") == 0) {
        kept = new char[4096];
        kept[0] = 1;
        kept = nullptr;  // the only pointer is gone: a leak at exit
        return 0;
    }
    if (std::strcmp(argv[1], "overflow") == 0) {
        auto* block = new char[16];
        volatile char* p = block;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"  // on purpose: the release build warns
        const char c = p[16];                    // one past the end
#pragma GCC diagnostic pop
        delete[] block;
        return c == 42 ? 3 : 0;
    }
    return std::strcmp(argv[1], "clean") == 0 ? 0 : 2;
}
