// protocol::recv_message / send_message across signals: libzmq fails a call
// with EINTR when a signal arrives while it waits or works through its
// command queue; the helpers make the call again instead of failing the
// caller (a SIGTERM to a worker once ended its run() with "poll:
// Interrupted system call").
#include "ferry/protocol/socket.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <zmq.hpp>

namespace ferry::protocol {
namespace {

std::atomic<int> g_alarms{0};
void on_alarm(int) {
  g_alarms.fetch_add(1);
}

TEST(Socket, ABlockingReceiveRidesOutSignals) {
  // SIGALRM only on this thread: blocked while libzmq's threads and the
  // sender start (they inherit the mask), unblocked here afterwards.
  sigset_t alarm_only;
  sigemptyset(&alarm_only);
  sigaddset(&alarm_only, SIGALRM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &alarm_only, nullptr), 0);
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls see EINTR
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);

  zmq::context_t ctx(1);
  zmq::socket_t rx(ctx, zmq::socket_type::pair);
  zmq::socket_t tx(ctx, zmq::socket_type::pair);
  rx.bind("inproc://signals");
  tx.connect("inproc://signals");
  std::atomic<bool> received{false};  // a failed receive must not leave the sender waiting
  std::thread sender([&] {
    while (g_alarms.load() < 5 && !received.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    zmq::message_t m(std::string_view("after the signals"));
    std::vector<zmq::message_t> frames;
    frames.push_back(std::move(m));
    EXPECT_TRUE(send_message(tx, frames));
  });
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &alarm_only, nullptr), 0);
  itimerval every_2ms{{0, 2000}, {0, 2000}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &every_2ms, nullptr), 0);

  auto got = recv_message(rx, /*wait=*/true);
  received = true;

  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  sender.join();
  sigaction(SIGALRM, &old, nullptr);
  ASSERT_TRUE(got) << got.error().message();
  ASSERT_EQ(got.value().size(), 1u);
  EXPECT_EQ(got.value()[0].to_string(), "after the signals");
  EXPECT_GE(g_alarms.load(), 5) << "the receive was never interrupted: the test proves nothing";
}

}  // namespace
}  // namespace ferry::protocol
