// Message contracts: a FlatBuffers root type with its binary schema, source
// text and verifier, for typed producers and handlers.
//
// For every .fbs with a root_type, the build (ferry_flatbuffers in
// tools/cmake/FerryHelpers.cmake) generates <stem>_contract.h next to
// <stem>_generated.h with a specialization:
//
//   template <> struct ferry::schema::contract<orders::OrderPlaced> {
//     using type = orders::OrderPlaced;
//     static constexpr std::string_view root_type = "ferry.samples.orders.OrderPlaced";
//     static constexpr std::string_view file_identifier = "ORD1";  // "" if none
//     static constexpr std::string_view source = "...the .fbs text...";
//     static std::string_view bfbs() noexcept;                        // the binary schema
//     static bool verify(const std::uint8_t* data, std::size_t size); // FlatBuffers Verifier
//     static const type* root(const std::uint8_t* data);
//   };
//
// so `ferry::client::schema_cache::id_for<orders::OrderPlaced>(subject)` and
// the runtime's typed handlers (`worker::on<orders::OrderPlaced>`) need
// nothing else from the user.
#pragma once

namespace ferry::schema {

/// Specialized by generated <stem>_contract.h headers; no definition for
/// types without one (a compile error names the type).
template <typename T>
struct contract;

/// True for types with a generated contract.
template <typename T, typename = void>
inline constexpr bool has_contract = false;
template <typename T>
inline constexpr bool has_contract<T, decltype(void(sizeof(contract<T>)))> = true;

}  // namespace ferry::schema
