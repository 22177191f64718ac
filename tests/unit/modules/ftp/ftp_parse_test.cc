// The FTP control channel parser: every announcement form of RFC 959,
// RFC 1123 and RFC 2428, what is not an announcement, what is malformed, and
// the bounded line assembly.
#include "modules/ftp/ftp_parse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace holdfast::ftp {
namespace {

std::optional<Announcement> client(std::string_view line, ParseError* e) {
  return parse_line(line, true, e);
}
std::optional<Announcement> server(std::string_view line, ParseError* e) {
  return parse_line(line, false, e);
}

IpAddr addr(const char* text) {
  return *IpAddr::parse(text);
}

TEST(FtpParse, PortCommand) {
  ParseError e;
  auto a = client("PORT 192,0,2,10,19,137", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(e, ParseError::none);
  EXPECT_EQ(a->kind, Announcement::Kind::port);
  EXPECT_TRUE(a->has_address);
  EXPECT_EQ(a->address, addr("192.0.2.10"));
  EXPECT_EQ(a->port, 19 * 256 + 137);
  // Commands are case-insensitive (RFC 959 5.3), spaces after commas occur.
  a = client("port 10,0,0,1, 4, 1", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address, addr("10.0.0.1"));
  EXPECT_EQ(a->port, 1025);
}

TEST(FtpParse, MalformedPortIsNamedAsSuch) {
  for (const char* bad : {"PORT 192,0,2,10,19", "PORT 192,0,2,10,19,137,1", "PORT 256,0,0,1,4,1",
                          "PORT 1,2,3,4,5,256", "PORT a,b,c,d,e,f", "PORT ", "PORT 1,,2,3,4,5",
                          "PORT 99999999999,0,0,1,1,1"}) {
    ParseError e;
    EXPECT_FALSE(client(bad, &e)) << bad;
    EXPECT_EQ(e, ParseError::malformed) << bad;
  }
}

TEST(FtpParse, EprtCommandBothFamilies) {
  ParseError e;
  auto a = client("EPRT |1|132.235.1.2|6275|", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Announcement::Kind::eprt);
  EXPECT_EQ(a->address, addr("132.235.1.2"));
  EXPECT_EQ(a->port, 6275);
  a = client("EPRT |2|1080::8:800:200C:417A|5282|", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address, addr("1080::8:800:200C:417A"));
  EXPECT_EQ(a->port, 5282);
  // Any delimiter from 33 to 126 (RFC 2428 2).
  a = client("eprt !2!2001:db8::1!40000!", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 40000);
}

TEST(FtpParse, MalformedEprt) {
  for (const char* bad :
       {"EPRT |3|1.2.3.4|5|", "EPRT |1|1.2.3|5|", "EPRT |1|1.2.3.4|70000|", "EPRT |1|1.2.3.4|5",
        "EPRT |2|::1|5|x", "EPRT |1|::1|5|", "EPRT |2|1.2.3.4|5|", "EPRT  ", "EPRT |1||5|",
        "EPRT \x01"
        "1\x01"
        "1.2.3.4\x01"
        "5\x01"}) {
    ParseError e;
    EXPECT_FALSE(client(bad, &e)) << bad;
    EXPECT_EQ(e, ParseError::malformed) << bad;
  }
}

TEST(FtpParse, PasvReplyInItsUsualForms) {
  ParseError e;
  auto a = server("227 Entering Passive Mode (198,51,100,20,195,80).", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Announcement::Kind::pasv_reply);
  EXPECT_EQ(a->address, addr("198.51.100.20"));
  EXPECT_EQ(a->port, 195 * 256 + 80);
  // RFC 1123 4.1.2.6: no parentheses, text with digits before the numbers.
  a = server("227 =198,51,100,20,4,1", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 1025);
  a = server("227 Mode 2 ok 10,0,0,5,200,1", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address, addr("10.0.0.5"));
}

TEST(FtpParse, EpsvReply) {
  ParseError e;
  auto a = server("229 Entering Extended Passive Mode (|||6446|)", &e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Announcement::Kind::epsv_reply);
  EXPECT_FALSE(a->has_address);
  EXPECT_EQ(a->port, 6446);
  EXPECT_TRUE(server("229 ok (!!!50000!)", &e));
}

TEST(FtpParse, MalformedReplies) {
  for (const char* bad :
       {"227 Entering Passive Mode (1,2,3,4,5)", "227 nothing here", "227 (300,1,1,1,1,1)",
        "229 Entering Extended Passive Mode (||6446|)", "229 (|||99999|)", "229 (|||1|",
        "229 no parentheses", "229 (|||6446!)"}) {
    ParseError e;
    EXPECT_FALSE(server(bad, &e)) << bad;
    EXPECT_EQ(e, ParseError::malformed) << bad;
  }
}

TEST(FtpParse, OrdinaryLinesAreNotAnnouncements) {
  for (const char* line :
       {"USER anonymous", "RETR file", "PASV", "EPSV", "PORTX 1,2,3,4,5,6", "", "P", "EPRT"}) {
    ParseError e;
    EXPECT_FALSE(client(line, &e)) << line;
    EXPECT_EQ(e, ParseError::not_announcement) << line;
  }
  for (const char* line : {"220 (vsFTPd 3.0.3)", "227-first line of a multi-line reply",
                           "150 Opening BINARY mode data connection", "22", "abc", ""}) {
    ParseError e;
    EXPECT_FALSE(server(line, &e)) << line;
    EXPECT_EQ(e, ParseError::not_announcement) << line;
  }
  // A server does not send PORT; a client does not send 227.
  ParseError e;
  EXPECT_FALSE(server("PORT 1,2,3,4,5,6", &e));
  EXPECT_FALSE(client("227 Entering Passive Mode (1,2,3,4,5,6)", &e));
}

std::vector<std::string> assemble(LineAssembler& a, const std::string& bytes) {
  std::vector<std::string> lines;
  a.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
         [&](std::string_view l) { lines.emplace_back(l); });
  return lines;
}

TEST(FtpParse, LinesAcrossSegments) {
  LineAssembler a;
  EXPECT_TRUE(assemble(a, "PO").empty());
  EXPECT_TRUE(assemble(a, "RT 1,2,3,4,").empty());
  EXPECT_EQ(a.pending(), 13u);
  EXPECT_EQ(assemble(a, "5,6\r"), std::vector<std::string>{});
  EXPECT_EQ(assemble(a, "\nPASV\r\nEPSV\r\n"),
            (std::vector<std::string>{"PORT 1,2,3,4,5,6", "PASV", "EPSV"}));
  EXPECT_EQ(a.pending(), 0u);
  // A bare LF ends a line too.
  EXPECT_EQ(assemble(a, "NOOP\n"), std::vector<std::string>{"NOOP"});
}

TEST(FtpParse, OverlongLinesAreSkippedToTheirEnd) {
  LineAssembler a;
  const std::string overlong(kMaxLine + 100, 'x');
  EXPECT_TRUE(assemble(a, overlong).empty());
  EXPECT_EQ(a.pending(), kMaxLine);
  EXPECT_EQ(assemble(a, "still the same line\r\nPORT 1,2,3,4,5,6\r\n"),
            std::vector<std::string>{"PORT 1,2,3,4,5,6"});
}

}  // namespace
}  // namespace holdfast::ftp
