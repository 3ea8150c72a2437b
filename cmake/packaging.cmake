# The tunnel .deb (CPack; scripts/package, docs/packaging.md): the binary, man
# pages and bash/zsh completions generated from the CLI's own command tree
# (`tunnel man DIR`, `tunnel completion bash|zsh`), example configs, the
# /etc/tunnel/relay.yaml conffile and the hardened systemd units.
include(GNUInstallDirs)

# `cpack` installs only what is built: it must not build the test suite.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(tunnel_docs_dir ${CMAKE_BINARY_DIR}/package-docs)
# Sanitized builds (ci preset) run the binary here too: no leak report on exit.
add_custom_command(
  OUTPUT ${tunnel_docs_dir}/man/tunnel.1 ${tunnel_docs_dir}/completions/tunnel
         ${tunnel_docs_dir}/completions/_tunnel
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${tunnel_docs_dir}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${tunnel_docs_dir}/completions
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0 $<TARGET_FILE:tunnel> man ${tunnel_docs_dir}/man
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0 $<TARGET_FILE:tunnel> completion bash -o ${tunnel_docs_dir}/completions/tunnel
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0 $<TARGET_FILE:tunnel> completion zsh -o ${tunnel_docs_dir}/completions/_tunnel
  DEPENDS tunnel
  COMMENT "Man pages and shell completions from tunnel's command tree" VERBATIM)
add_custom_target(tunnel_docs DEPENDS ${tunnel_docs_dir}/man/tunnel.1)

set(pkg ${PROJECT_SOURCE_DIR}/packaging)
install(DIRECTORY ${tunnel_docs_dir}/man/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        FILES_MATCHING PATTERN "*.1")
install(FILES ${tunnel_docs_dir}/completions/tunnel
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${tunnel_docs_dir}/completions/_tunnel
        DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
install(FILES ${pkg}/systemd/tunnel-relay.service ${pkg}/systemd/tunnel-up@.service
        DESTINATION lib/systemd/system)
install(FILES ${pkg}/examples/relay.yaml ${pkg}/examples/dev-relay.yaml ${pkg}/examples/office.yaml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${pkg}/etc/relay.yaml DESTINATION /etc/tunnel PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tunnel)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Tunnel maintainers <tunnel@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SSH toolkit and relay: exec, cp, sync, forward, publish through a relay")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # the ci preset's binary also needs libasan8, libubsan1
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${pkg}/debian/postinst ${pkg}/debian/prerm
    ${pkg}/debian/postrm ${pkg}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_OUTPUT_FILE_PREFIX ${PROJECT_SOURCE_DIR}/build/package)
include(CPack)
