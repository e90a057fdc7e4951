#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moe/expert/v1/expert.grpc.pb.h"
#include "moe/expert/v1/expert_mock.grpc.pb.h"
#include "moe/scheduler/v1/scheduler.pb.h"

namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::Return;
using ::testing::SetArgPointee;

TEST(Proto, TensorBytesRoundTrip) {
  moe::expert::v1::ComputeRequest req;
  req.set_layer(3);
  auto* shard = req.add_shards();
  shard->set_expert(5);
  auto* t = shard->mutable_hidden();
  t->set_dtype(moe::common::v1::DTYPE_F32);
  t->add_shape(2);
  t->add_shape(4);
  float values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  t->set_data(reinterpret_cast<const char*>(values), sizeof(values));
  std::string wire = req.SerializeAsString();
  moe::expert::v1::ComputeRequest back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.layer(), 3);
  ASSERT_EQ(back.shards_size(), 1);
  const auto& bt = back.shards(0).hidden();
  ASSERT_EQ(bt.data().size(), sizeof(values));
  EXPECT_EQ(reinterpret_cast<const float*>(bt.data().data())[7], 8.0f);
}

TEST(Proto, GeneratedMockStub) {
  moe::expert::v1::MockExpertServiceStub stub;
  moe::expert::v1::DescribeResponse canned;
  canned.set_backend("cpu");
  EXPECT_CALL(stub, Describe(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(canned), Return(grpc::Status::OK)));
  grpc::ClientContext ctx;
  moe::expert::v1::DescribeResponse out;
  EXPECT_TRUE(stub.Describe(&ctx, {}, &out).ok());
  EXPECT_EQ(out.backend(), "cpu");
}

}  // namespace
