# Cross-compiling for 64-bit Arm Linux with Debian's gcc-aarch64-linux-gnu.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#
# Libraries for the target (libc, cmocka) come from Debian multiarch
# (libcmocka-dev:arm64 installs into /usr/lib/aarch64-linux-gnu).  ctest runs
# the test programs under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ASYNCIO_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${ASYNCIO_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${ASYNCIO_CROSS_TRIPLE}-gcc)

# Target libraries and headers live in the multiarch directories of the host
# root (/usr/include/aarch64-linux-gnu, /usr/lib/aarch64-linux-gnu) and in the
# cross toolchain's own sysroot (/usr/aarch64-linux-gnu), so both are searched.
# CMAKE_LIBRARY_ARCHITECTURE makes find_library look in lib/aarch64-linux-gnu
# (never lib/x86_64-linux-gnu), so the host's libcmocka is not picked up.
# Programs (qemu, pkg-config) are host programs.
set(CMAKE_LIBRARY_ARCHITECTURE ${ASYNCIO_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${ASYNCIO_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config (a host program) must describe the target's libraries: CMake's
# FindOpenSSL takes its answer as a hint that beats the search paths, and the
# host's answer is the x86-64 libssl.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${ASYNCIO_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# Run target programs under qemu-user.  The dynamic loader and libc must come
# from the same glibc build: the loader in the cross toolchain's sysroot
# (/usr/aarch64-linux-gnu, libc6-arm64-cross) paired with the multiarch libc
# the programs are linked against (libc6:arm64, pulled in by
# libcmocka-dev:arm64) hangs in pthread_create when the two Debian versions
# differ.  So when the multiarch libc is installed, qemu uses the multiarch
# loader (-L /); otherwise the toolchain sysroot.
if(EXISTS /lib/ld-linux-aarch64.so.1 AND EXISTS /usr/lib/${ASYNCIO_CROSS_TRIPLE}/libc.so.6)
  set(ASYNCIO_QEMU_LD_PREFIX / CACHE PATH "qemu-user -L: where the aarch64 dynamic loader lives")
else()
  set(ASYNCIO_QEMU_LD_PREFIX /usr/${ASYNCIO_CROSS_TRIPLE} CACHE PATH
      "qemu-user -L: where the aarch64 dynamic loader lives")
endif()
find_program(ASYNCIO_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(ASYNCIO_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ASYNCIO_QEMU_AARCH64} -L ${ASYNCIO_QEMU_LD_PREFIX})
endif()
