// The numbers of nftables and the kernel that the encoder writes and that no header this
// project builds against names: each defined once here, with where it comes from. What
// <linux/netfilter/nf_tables.h> and the other kernel headers name (NFT_META_*, NFT_CT_*,
// NFT_PAYLOAD_*, NFT_DATA_VERDICT, ...) is used under its own name instead.
//
// Most of them are nft's own (not the kernel's): the kernel stores them in set userdata
// and set key types without reading them, and `nft list` reads them back to print the
// elements and the key's typeof expression. They must equal nft 1.0.6's, or nft prints
// sets the encoder made differently from those `nft -f` made (tests/integration/
// test_oracle_encoder.sh compares the two).
#pragma once

#include <linux/netfilter/nf_tables.h>

#include <cstdint>

// Kernels since 6.9 keep a table whose owner socket closed; Debian 12's
// <linux/netfilter/nf_tables.h> predates it (enum nft_table_flags, docs/nftables-owner.md).
// Newer headers have it as an enumerator, not a macro: the include above comes first, so
// that this macro is only ever seen after the enum.
#ifndef NFT_TABLE_F_PERSIST
#define NFT_TABLE_F_PERSIST 0x4
#endif

namespace portier::nft {

// nft's enum datatypes (include/datatype.h): the key and data types of sets.
inline constexpr std::uint32_t kTypeIpAddr = 7;        // TYPE_IPADDR, ipv4_addr
inline constexpr std::uint32_t kTypeIp6Addr = 8;       // TYPE_IP6ADDR, ipv6_addr
inline constexpr std::uint32_t kTypeInetProto = 12;    // TYPE_INET_PROTOCOL
inline constexpr std::uint32_t kTypeInetService = 13;  // TYPE_INET_SERVICE
inline constexpr std::uint32_t kTypeIcmpType = 14;     // TYPE_ICMP_TYPE
inline constexpr std::uint32_t kTypeIcmp6Type = 29;    // TYPE_ICMP6_TYPE
inline constexpr std::uint32_t kTypeIfname = 41;       // TYPE_IFNAME
inline constexpr std::uint32_t kTypeCgroupV2 = 46;     // TYPE_CGROUPV2: a host-endian 64-bit id
// TYPE_BITS (include/datatype.h): a concatenation's type shifts the type so far by this
// many bits for each further field and adds the field's own.
inline constexpr std::uint32_t kTypeBits = 6;

// nft's enum byteorder (include/datatype.h), as NFTNL_UDATA_SET_KEYBYTEORDER.
inline constexpr std::uint32_t kByteorderInvalid = 0;     // BYTEORDER_INVALID
inline constexpr std::uint32_t kByteorderHostEndian = 1;  // BYTEORDER_HOST_ENDIAN
inline constexpr std::uint32_t kByteorderBigEndian = 2;   // BYTEORDER_BIG_ENDIAN

// nft's enum expr_types (include/expression.h), as NFTNL_UDATA_SET_TYPEOF_EXPR.
inline constexpr std::uint32_t kExprVerdict = 1;  // EXPR_VERDICT
inline constexpr std::uint32_t kExprPayload = 7;  // EXPR_PAYLOAD
inline constexpr std::uint32_t kExprMeta = 9;     // EXPR_META
inline constexpr std::uint32_t kExprCt = 12;      // EXPR_CT
inline constexpr std::uint32_t kExprConcat = 13;  // EXPR_CONCAT

// nft's enum proto_desc_id (include/proto.h): the header a payload typeof names.
inline constexpr std::uint32_t kProtoDescIcmp = 4;    // PROTO_DESC_ICMP
inline constexpr std::uint32_t kProtoDescUdp = 6;     // PROTO_DESC_UDP
inline constexpr std::uint32_t kProtoDescTcp = 8;     // PROTO_DESC_TCP
inline constexpr std::uint32_t kProtoDescSctp = 10;   // PROTO_DESC_SCTP
inline constexpr std::uint32_t kProtoDescTh = 11;     // PROTO_DESC_TH
inline constexpr std::uint32_t kProtoDescIp = 12;     // PROTO_DESC_IP
inline constexpr std::uint32_t kProtoDescIp6 = 13;    // PROTO_DESC_IP6
inline constexpr std::uint32_t kProtoDescIcmp6 = 14;  // PROTO_DESC_ICMP6

// Header fields within those descriptions (include/proto.h: enum tcp_hdr_fields and
// its udp, sctp and th twins, icmp_hdr_fields, ip_hdr_fields, ip6_hdr_fields).
inline constexpr std::uint32_t kSportField = 1;     // *HDR_SPORT: the same in tcp, udp, sctp, th
inline constexpr std::uint32_t kDportField = 2;     // *HDR_DPORT
inline constexpr std::uint32_t kIcmpTypeField = 1;  // ICMPHDR_TYPE, ICMP6HDR_TYPE
inline constexpr std::uint32_t kIpSaddrField = 11;  // IPHDR_SADDR
inline constexpr std::uint32_t kIpDaddrField = 12;  // IPHDR_DADDR
inline constexpr std::uint32_t kIp6SaddrField = 8;  // IP6HDR_SADDR
inline constexpr std::uint32_t kIp6DaddrField = 9;  // IP6HDR_DADDR

// The records inside NFTNL_UDATA_SET_TYPEOF_DATA, per expression: nft's payload, meta and
// ct expressions each number their own (src/payload.c, src/meta.c, src/ct.c).
inline constexpr std::uint8_t kUdataPayloadDesc = 0;   // the proto_desc_id
inline constexpr std::uint8_t kUdataPayloadField = 1;  // the header field
inline constexpr std::uint8_t kUdataMetaKey = 0;       // NFT_META_*
inline constexpr std::uint8_t kUdataCtKey = 0;         // NFT_CT_*
inline constexpr std::uint8_t kUdataCtDir = 1;         // IP_CT_DIR_*

}  // namespace portier::nft
