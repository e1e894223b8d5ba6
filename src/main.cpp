#include "app/crashmail_main.hpp"

int main(int argc, char** argv) {
    return crashmail::crashmail_main(argc, argv);
}
