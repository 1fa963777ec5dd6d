# Pushes FwJob jobs with the Sidekiq client, as an application would:
#   ruby push.rb jobs N        N jobs with perform_async (tags job-0 .. job-N-1)
#   ruby push.rb scheduled S   one job with perform_in(S seconds), tag "sched"
# Prints one line per job id, then the sizes Sidekiq's API reports.
require_relative "jobs"
require "sidekiq/api"

mode, n = ARGV[0], Integer(ARGV[1] || "1")
case mode
when "jobs"
  n.times { |i| puts "jid #{FwJob.perform_async("job-#{i}")}" }
  puts "queue_size #{Sidekiq::Queue.new("default").size}"
when "scheduled"
  puts "pushed_at #{Time.now.to_f}"
  puts "jid #{FwJob.perform_in(n, "sched")}"
  puts "scheduled_size #{Sidekiq::ScheduledSet.new.size}"
else
  abort "usage: ruby push.rb jobs N | scheduled SECONDS"
end
