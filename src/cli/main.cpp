#include "cli/cli.h"

int main(int argc, char** argv) { return tearline::cli::Run(argc, argv); }
