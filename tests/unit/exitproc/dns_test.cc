// Query checks, answer checks and the SERVFAIL / truncated replies of the exit's DNS
// forwarder.
#include "exitproc/dns.h"

#include <gtest/gtest.h>

namespace tw::exitproc {
namespace {

// A query for example.test A, ID 0x1234, RD set, with an EDNS OPT record after it.
Bytes query(bool with_opt = true) {
  Bytes q = {0x12, 0x34, 0x01, 0x00, 0, 1,
             0,    0,    0,    0,    0, static_cast<std::uint8_t>(with_opt ? 1 : 0)};
  for (std::string_view label : {"example", "test"}) {
    q.push_back(static_cast<std::uint8_t>(label.size()));
    q.insert(q.end(), label.begin(), label.end());
  }
  q.insert(q.end(), {0, 0, 1, 0, 1});
  if (with_opt) q.insert(q.end(), {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
  return q;
}

TEST(ExitDnsTest, ValidQueriesAreAcceptedWithTheirQuestionEnd) {
  auto info = check_dns_query(query());
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->id, 0x1234);
  EXPECT_EQ(info->question_end, 12u + 14u + 4u);
  EXPECT_TRUE(check_dns_query(query(false)).ok());
}

TEST(ExitDnsTest, MalformedQueriesAreRefused) {
  Bytes q = query();
  EXPECT_FALSE(check_dns_query(ByteView(q).first(11)).ok()) << "short";
  Bytes big(513, 0);
  EXPECT_FALSE(check_dns_query(big).ok()) << "over 512";
  Bytes resp = q;
  resp[2] |= 0x80;
  EXPECT_FALSE(check_dns_query(resp).ok()) << "QR set";
  Bytes notify = q;
  notify[2] |= 4 << 3;
  EXPECT_FALSE(check_dns_query(notify).ok()) << "opcode NOTIFY";
  Bytes two = q;
  two[5] = 2;
  EXPECT_FALSE(check_dns_query(two).ok()) << "QDCOUNT 2";
  Bytes ptr = q;
  ptr[12] = 0xc0;
  EXPECT_FALSE(check_dns_query(ptr).ok()) << "compression pointer in the question";
  Bytes cut(q.begin(), q.begin() + 12 + 14 + 2);
  EXPECT_FALSE(check_dns_query(cut).ok()) << "type/class cut";
  Bytes runaway(q.begin(), q.begin() + 12 + 5);
  EXPECT_FALSE(check_dns_query(runaway).ok()) << "label past the end";
  Bytes longname = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 5; ++i) {
    longname.push_back(63);
    longname.insert(longname.end(), 63, 'a');
  }
  longname.insert(longname.end(), {0, 0, 1, 0, 1});
  EXPECT_FALSE(check_dns_query(longname).ok()) << "name over 255 bytes";
}

TEST(ExitDnsTest, AnswersMustMatchAndRepliesAreBuiltFromTheQuestion) {
  const Bytes q = query();
  const auto info = *check_dns_query(q);
  Bytes ans = q;
  ans[2] |= 0x80;
  EXPECT_TRUE(check_dns_answer(q, info, ans).ok());
  Bytes wrong_id = ans;
  wrong_id[1] ^= 1;
  EXPECT_FALSE(check_dns_answer(q, info, wrong_id).ok());
  EXPECT_FALSE(check_dns_answer(q, info, q).ok()) << "QR clear";
  EXPECT_FALSE(check_dns_answer(q, info, ByteView(ans).first(11)).ok());
  const Bytes sf = make_servfail(q, info);
  ASSERT_EQ(sf.size(), info.question_end);
  EXPECT_EQ(sf[0], 0x12);
  EXPECT_EQ(sf[2], 0x81) << "QR and RD";
  EXPECT_EQ(sf[3] & 0x0f, 2) << "SERVFAIL";
  EXPECT_EQ(sf[11], 0) << "the OPT record is not echoed";
  Bytes big_ans = ans;
  big_ans[3] = 0x83;  // RA, NXDOMAIN
  const Bytes tc = make_truncated(q, info, big_ans);
  EXPECT_EQ(tc[2] & 0x02, 0x02) << "TC";
  EXPECT_EQ(tc[3], 0x83);
  EXPECT_EQ(tc.size(), info.question_end);
}

}  // namespace
}  // namespace tw::exitproc
