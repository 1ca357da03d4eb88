// For test_credentials.cpp: starts a token command that would run 30 s, lets its only caller
// give up, and returns from main while the command runs. The command writes its pid to the file
// named by argv[1]; the test checks that the program's exit ended it.
#include <cloudmysql/credentials.hpp>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    if (argc != 2)
        return 2;
    const std::string pid_file = argv[1];
    const auto provider = cloudmysql::command_token_provider(
        "exit-test", fmt::format("echo $$ > {}.tmp && mv {}.tmp {}; exec sleep 30", pid_file,
                                 pid_file, pid_file));
    try {
        provider(std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
        return 3; // `sleep 30` cannot have printed a token
    } catch (const cloudmysql::credential_timeout&) {
    }
    // Until the command has written its pid (bounded), then leave with it running.
    for (int i = 0; i < 500 && !std::ifstream(pid_file); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return std::ifstream(pid_file) ? 0 : 4;
}
